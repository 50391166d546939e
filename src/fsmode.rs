//! Owner-only files and directories for the user's data and logs.
//!
//! The database holds the user's notes and the logs name what their tool
//! calls did: on a shared machine, neither may be readable by other local
//! users. On unix, [`private_umask`] makes everything the process creates
//! owner-only, including files made by libraries that take no mode (SQLite's
//! `-wal` and `-shm`, the log appender's daily files); the helpers below give
//! explicit modes too, so a caller that never set the umask (a test, a
//! library user) still gets private files. Elsewhere they do what the
//! platform's defaults do.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Makes every file and directory this process creates from now on
/// owner-only: umask 0o077. The mask is per process, so call it before any
/// thread is started. A no-op where there is no umask.
pub fn private_umask() {
    // SAFETY: umask(2) cannot fail and touches no memory. Its one hazard, a
    // file created by another thread while the mask changes, is why callers
    // set it before starting any.
    #[cfg(unix)]
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` and whichever of its ancestors are missing, each 0700
/// (whatever the umask allows beyond that). Directories that already exist
/// are left as they are: we do not own `/tmp` because a path goes through it.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` empty with mode 0600 unless it exists; `Ok(false)` when it
/// did. Atomic (`O_EXCL`): the file is never, even for an instant, open to
/// others.
pub fn create_private_file(path: &Path) -> io::Result<bool> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the group and other permission bits off the file at `path`, if it
/// has any; `Ok(true)` when it changed, `Ok(false)` when there was nothing
/// to do or no such file.
pub fn restrict_file(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        let owner_only = std::fs::Permissions::from_mode(mode & 0o700);
        std::fs::set_permissions(path, owner_only)?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn only_created_directories_are_made_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let found = tmp.path().join("found");
        std::fs::create_dir(&found).expect("mkdir");
        std::fs::set_permissions(&found, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir_all(&found.join("a/b")).expect("create");
        assert_eq!(
            [&found, &found.join("a"), &found.join("a/b")].map(|d| mode(d)),
            [0o755, 0o700, 0o700]
        );
        create_private_dir_all(&found).expect("an existing directory is fine");
    }

    #[test]
    fn files_are_created_private_and_loose_ones_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        assert!(create_private_file(&file).expect("create"));
        assert_eq!(mode(&file), 0o600);
        assert!(!create_private_file(&file).expect("exists"));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).expect("chmod");
        assert!(restrict_file(&file).expect("restrict"));
        assert_eq!(mode(&file), 0o600);
        assert!(!restrict_file(&file).expect("already private"));
        assert!(!restrict_file(&tmp.path().join("missing")).expect("no file"));
    }
}
