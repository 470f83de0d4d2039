//! MISC_CHECK: `misc_path` run with `/bin/sh -c`, killed (with everything it started) after
//! misc_timeout. Exit 0 passes. With misc_dynamic, 1 fails and 2..=255 pass and ask for weight
//! status - 2; without, any other status fails.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use std::os::unix::process::{CommandExt, ExitStatusExt};

use super::MiscCheck;

/// Ok(None): passed; Ok(Some(w)): passed asking for weight w (misc_dynamic).
pub async fn check(m: &MiscCheck, default_timeout: Duration) -> Result<Option<i32>, String> {
    let timeout = m.timeout.unwrap_or(default_timeout);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&m.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills what the script started too.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run '{}': {e}", m.path))?;
    let group = KillGroup(Some(Pid::from_raw(child.id() as i32)));
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    let status = match tokio::time::timeout(timeout, &mut wait).await {
        Ok(joined) => joined.map_err(|e| format!("waiting for '{}': {e}", m.path))?,
        Err(_) => {
            drop(group);
            // Reap it: the wait returns as soon as the kill lands.
            let _ = wait.await;
            return Err(format!(
                "'{}' timed out after {timeout:?} and was killed",
                m.path
            ));
        }
    };
    group.disarm();
    let status = status.map_err(|e| format!("waiting for '{}': {e}", m.path))?;
    let Some(code) = status.code() else {
        return Err(format!(
            "'{}' was killed by signal {}",
            m.path,
            status.signal().unwrap_or(0)
        ));
    };
    match (code, m.dynamic) {
        (0, _) => Ok(None),
        (2..=255, true) => Ok(Some(code - 2)),
        (c, _) => Err(format!("'{}' exited with status {c}", m.path)),
    }
}

/// Kills the script's process group when dropped armed: on timeout, and when the check is
/// cancelled (the runner stopped) while the script runs.
struct KillGroup(Option<Pid>);

impl KillGroup {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn misc(path: &str, dynamic: bool) -> MiscCheck {
        MiscCheck {
            path: path.to_owned(),
            timeout: Some(Duration::from_millis(300)),
            dynamic,
        }
    }

    #[tokio::test]
    async fn exit_statuses() {
        let d = Duration::from_secs(1);
        assert_eq!(check(&misc("exit 0", false), d).await, Ok(None));
        assert!(
            check(&misc("exit 3", false), d)
                .await
                .unwrap_err()
                .contains("status 3")
        );
        assert_eq!(check(&misc("exit 0", true), d).await, Ok(None));
        assert!(check(&misc("exit 1", true), d).await.is_err());
        assert_eq!(check(&misc("exit 12", true), d).await, Ok(Some(10)));
        assert_eq!(check(&misc("exit 255", true), d).await, Ok(Some(253)));
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let dir = std::env::temp_dir().join(format!("rvs-misc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("survived");
        // The child of the shell would write the marker if it outlived the kill.
        let script = format!("(sleep 0.6; touch {}) & wait", marker.display());
        let start = Instant::now();
        let err = check(&misc(&script, false), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(
            start.elapsed() < Duration::from_millis(550),
            "{:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!marker.exists(), "the script's child outlived the timeout");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
