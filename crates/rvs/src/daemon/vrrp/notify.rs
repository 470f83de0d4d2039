//! notify_master / notify_backup / notify_fault / notify_stop and the generic `notify`, run as
//! keepalived runs them: the configured command split into words and executed directly (no
//! shell), the generic one with `INSTANCE|GROUP name state priority` appended. They run beside
//! the VRRP task, which never waits for them.

use std::time::Duration;

use tracing::{debug, warn};

use super::{instance::Notify, machine::NotifyState};

/// A notify script that has not finished by then is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an instance or a sync group changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Instance,
    Group,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Instance => "INSTANCE",
            Kind::Group => "GROUP",
        }
    }
}

/// The command lines to run for `state` (the specific one first, then the generic one).
pub fn commands(
    n: &Notify,
    kind: Kind,
    name: &str,
    state: NotifyState,
    priority: u8,
) -> Vec<Vec<String>> {
    let specific = match state {
        NotifyState::Master => &n.master,
        NotifyState::Backup => &n.backup,
        NotifyState::Fault => &n.fault,
        NotifyState::Stop => &n.stop,
    };
    let mut out = Vec::new();
    if let Some(cmd) = specific {
        out.push(words(cmd));
    }
    if let Some(cmd) = &n.generic {
        let mut argv = words(cmd);
        argv.extend([
            kind.word().to_owned(),
            name.to_owned(),
            state.name().to_owned(),
            priority.to_string(),
        ]);
        out.push(argv);
    }
    out.retain(|a| !a.is_empty());
    out
}

fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_owned).collect()
}

/// Starts `argv` and reaps it on a task of its own (whose handle tells when it is done). A
/// script still running when rvsd exits is left to finish, as keepalived leaves them.
pub fn run(argv: Vec<String>) -> Option<tokio::task::JoinHandle<()>> {
    let (program, args) = argv.split_first()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            let line = argv.join(" ");
            Some(tokio::spawn(async move {
                match tokio::time::timeout(NOTIFY_TIMEOUT, child.wait()).await {
                    Ok(Ok(s)) if s.success() => debug!("notify '{line}' done"),
                    Ok(Ok(s)) => warn!("notify '{line}' exited with {s}"),
                    Ok(Err(e)) => warn!("notify '{line}': {e}"),
                    Err(_) => {
                        warn!("notify '{line}' did not finish in {NOTIFY_TIMEOUT:?}; killed");
                        let _ = child.kill().await;
                    }
                }
            }))
        }
        Err(e) => {
            warn!("cannot run notify '{}': {e}", argv.join(" "));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_notify_gets_keepalived_s_arguments() {
        let n = Notify {
            master: Some("/etc/k/master.sh up now".into()),
            generic: Some("/etc/k/notify.sh".into()),
            ..Notify::default()
        };
        let c = commands(&n, Kind::Instance, "VI_1", NotifyState::Master, 150);
        assert_eq!(
            c,
            [
                vec!["/etc/k/master.sh", "up", "now"],
                vec!["/etc/k/notify.sh", "INSTANCE", "VI_1", "MASTER", "150"]
            ]
        );
        let c = commands(&n, Kind::Group, "G", NotifyState::Fault, 0);
        assert_eq!(c, [vec!["/etc/k/notify.sh", "GROUP", "G", "FAULT", "0"]]);
    }
}
