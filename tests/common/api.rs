//! A standalone embedded API (`serve-api`) as a remote upstream with real
//! semantics, and a second client of it: "another device" of the same user.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SECRET: &str = "lifecycle-secret-0123456789abcdef";

/// A standalone embedded API, as a remote upstream would be.
pub struct ApiProcess {
    child: Child,
    pub url: String,
    pub db_path: PathBuf,
}

impl ApiProcess {
    pub async fn start(db_path: &Path, log_dir: &Path) -> Self {
        let mut child = Command::new(super::BIN)
            .args(["serve-api", "--listen", "127.0.0.1:0", "--db-path"])
            .arg(db_path)
            .env_clear()
            .env("TOOLBRIDGE_API_SECRET", SECRET)
            .env("TOOLBRIDGE_LOG_DIR", log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn serve-api");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("embedded API on ").nth(1) {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("serve-api exited before listening");
        })
        .await
        .expect("serve-api starts");
        Self {
            child,
            url,
            db_path: db_path.to_owned(),
        }
    }

    /// Stops the API, as a network outage would look to its clients.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Another device of the same user: its own session, straight HTTP.
    pub async fn device(&self) -> Device {
        Device::open(&self.url, SECRET).await
    }

    /// Raises the tenant's epoch, as a reset of the tenant would.
    pub async fn wipe(&self) {
        let device = self.device().await;
        device
            .send(reqwest::Method::POST, "/v1/sync/wipe", None)
            .await;
    }
}

/// A client of the API other than the sidecar.
pub struct Device {
    http: reqwest::Client,
    url: String,
    secret: String,
    session: String,
    epoch: u64,
}

impl Device {
    /// A client of the embedded API at `url` (tenant `local`), with its own
    /// session.
    pub async fn open(url: &str, secret: &str) -> Self {
        let http = reqwest::Client::new();
        let session: Value = http
            .post(format!("{url}/v1/sync/sessions"))
            .bearer_auth(secret)
            .header("X-TB-Tenant-ID", "local")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            http,
            url: url.to_owned(),
            secret: secret.to_owned(),
            session: session["id"].as_str().unwrap().to_owned(),
            epoch: session["epoch"].as_u64().unwrap_or(1),
        }
    }

    /// Sends a request of the device's session; returns the JSON answer,
    /// which must be a success.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.secret)
            .header("X-TB-Tenant-ID", "local")
            .header("X-Sync-Session", &self.session)
            .header("X-Sync-Epoch", self.epoch.to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The HTTP client, the session and the epoch, for a request of a
    /// test's own.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Creates a note; returns the item.
    pub async fn create_note(&self, title: &str) -> Value {
        self.send(
            reqwest::Method::POST,
            "/v1/notes",
            Some(json!({"title": title})),
        )
        .await
    }

    /// Changes the given fields of a note; returns the item.
    pub async fn patch_note(&self, uid: &str, fields: Value) -> Value {
        self.send(
            reqwest::Method::PATCH,
            &format!("/v1/notes/{uid}"),
            Some(fields),
        )
        .await
    }

    pub async fn delete_note(&self, uid: &str) -> Value {
        self.send(reqwest::Method::DELETE, &format!("/v1/notes/{uid}"), None)
            .await
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
