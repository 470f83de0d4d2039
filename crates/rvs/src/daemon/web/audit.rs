//! The audit log: one JSON line per change made through the monitor (and per refused one), with
//! who, how they were authenticated, from where, what and when, appended to `web-audit.log` in
//! rvsd's state directory.

use std::{io::Write, net::IpAddr, path::PathBuf, sync::Mutex};

use serde::Serialize;

#[derive(Serialize)]
pub struct Entry<'a> {
    pub time_unix_ms: u64,
    pub user: &'a str,
    /// `session`, `token:<id>`.
    pub via: &'a str,
    pub from: IpAddr,
    pub action: &'a str,
    pub target: &'a str,
    /// `ok`, or why it was refused.
    pub result: &'a str,
}

pub struct Audit {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Audit {
    pub fn new(path: PathBuf) -> Audit {
        Audit {
            path,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `e`; a log that cannot be written is reported, and the change stands.
    pub fn record(&self, e: &Entry<'_>) {
        let mut line = serde_json::to_string(e).expect("audit entry");
        line.push('\n');
        let _guard = self.lock.lock().expect("audit");
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(err) = r {
            tracing::error!("web: writing the audit log {}: {err}", self.path.display());
        }
    }
}
