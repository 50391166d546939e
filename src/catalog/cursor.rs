//! The cursors this server hands out, and the one place that tells them from
//! anything else.
//!
//! The upstream passes back a cursor it cannot decode by silently starting
//! over (contract §2, §8): a model that truncated or made up a cursor would
//! loop or repeat items without knowing. So every cursor a call gives is
//! checked here, when the call is planned, whichever path then serves it
//! (the replica, or the upstream when the replica is off or not synced yet).
//!
//! Three shapes, none a prefix of another (`.` never appears in base64url):
//! - after a position, oldest first: exactly the upstream's, base64url
//!   without padding of `"<updated ms>|<uid>"`, meaning "strictly after". A
//!   page from the upstream continues from the replica and the other way;
//! - before a position, newest first (only the replica lists so): `n.` and
//!   the same;
//! - a search's offset: `s.` and base64url of the number.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::Order;
use crate::error::ToolError;

const BEFORE_PREFIX: &str = "n.";
const OFFSET_PREFIX: &str = "s.";

/// A place in the listing order `(updated ms, uid)`; orders as that pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub updated_ms: i64,
    pub uid: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Oldest first, strictly after: the upstream's own format.
    After(Position),
    /// Newest first, strictly before.
    Before(Position),
    /// The offset of a search's next hit.
    Offset(usize),
}

/// What a cursor is passed back to continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    List(Order),
    Search,
}

impl Cursor {
    /// The cursor `text` is, or `None` for anything of no known shape.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(raw) = text.strip_prefix(OFFSET_PREFIX) {
            let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
            return std::str::from_utf8(&bytes)
                .ok()?
                .parse()
                .ok()
                .map(Self::Offset);
        }
        let (raw, before) = match text.strip_prefix(BEFORE_PREFIX) {
            Some(raw) => (raw, true),
            None => (text, false),
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let (ms, uid) = std::str::from_utf8(&bytes).ok()?.split_once('|')?;
        let at = Position {
            updated_ms: ms.parse().ok()?,
            uid: Uuid::parse_str(uid).ok()?,
        };
        Some(if before {
            Self::Before(at)
        } else {
            Self::After(at)
        })
    }

    /// Whether this cursor continues `listing`.
    fn continues(self, listing: Listing) -> bool {
        matches!(
            (self, listing),
            (Self::After(_), Listing::List(Order::Oldest))
                | (Self::Before(_), Listing::List(Order::Newest))
                | (Self::Offset(_), Listing::Search)
        )
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position = |at: &Position| {
            URL_SAFE_NO_PAD.encode(format!("{}|{}", at.updated_ms, at.uid.hyphenated()))
        };
        match self {
            Self::After(at) => f.write_str(&position(at)),
            Self::Before(at) => write!(f, "{BEFORE_PREFIX}{}", position(at)),
            Self::Offset(n) => write!(
                f,
                "{OFFSET_PREFIX}{}",
                URL_SAFE_NO_PAD.encode(n.to_string())
            ),
        }
    }
}

/// Refuses a `cursor` argument that does not continue `listing`: one this
/// server did not hand out (cut short, made up), or one of another listing.
pub fn check(listing: Listing, text: &str) -> Result<(), ToolError> {
    let hint = match Cursor::parse(text) {
        Some(cursor) if cursor.continues(listing) => return Ok(()),
        Some(Cursor::After(_)) => "it continues a list oldest first",
        Some(Cursor::Before(_)) => "it continues a list with order newest",
        Some(Cursor::Offset(_)) => "it continues a search",
        None => "it is not one this server handed out",
    };
    Err(refusal(hint))
}

/// The error for a cursor that cannot continue a listing, `hint` saying why.
pub fn refusal(hint: &str) -> ToolError {
    ToolError::invalid_input(format!(
        "cursor: {hint}; pass nextCursor back unchanged with the same arguments, or omit it to start over"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c0c56-1b7e-4a53-9b1e-6f5d7f0e3c11";

    fn at(ms: i64) -> Position {
        Position {
            updated_ms: ms,
            uid: Uuid::parse_str(UID).unwrap(),
        }
    }

    #[test]
    fn every_shape_round_trips() {
        for cursor in [
            Cursor::After(at(1_764_498_525_120)),
            Cursor::Before(at(-5)),
            Cursor::Offset(40),
        ] {
            assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
        }
    }

    #[test]
    fn after_is_the_upstreams_format() {
        let upstream = URL_SAFE_NO_PAD.encode(format!("1764498525120|{UID}"));
        assert_eq!(Cursor::After(at(1_764_498_525_120)).to_string(), upstream);
        // An upper-case uid is still the same position.
        let shouting = URL_SAFE_NO_PAD.encode(format!("1764498525120|{}", UID.to_uppercase()));
        assert_eq!(
            Cursor::parse(&shouting),
            Some(Cursor::After(at(1_764_498_525_120)))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let full = Cursor::After(at(12)).to_string();
        for bad in [
            "",
            "not a cursor!",
            "c-1",
            "n.",
            "s.",
            "s.!!",
            "n.n.abc",
            &full[..full.len() - 3],
            &URL_SAFE_NO_PAD.encode("12|nope"),
            &URL_SAFE_NO_PAD.encode("soon|6f1c0c56-1b7e-4a53-9b1e-6f5d7f0e3c11"),
            &URL_SAFE_NO_PAD.encode("12"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
            assert!(check(Listing::Search, bad).is_err());
        }
    }

    #[test]
    fn a_cursor_continues_only_its_own_listing() {
        let listings = [
            Listing::List(Order::Oldest),
            Listing::List(Order::Newest),
            Listing::Search,
        ];
        let cursors = [
            Cursor::After(at(1)),
            Cursor::Before(at(1)),
            Cursor::Offset(1),
        ];
        for (i, cursor) in cursors.iter().enumerate() {
            for (j, listing) in listings.iter().enumerate() {
                assert_eq!(check(*listing, &cursor.to_string()).is_ok(), i == j);
            }
        }
    }
}
