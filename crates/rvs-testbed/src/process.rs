//! A long-running program (rvsd) started inside a namespace, with its output in a log file, and
//! stopped when its handle is dropped.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{Netns, poll::poll_until};

/// How long a dropped process gets to exit on SIGTERM before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a process to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Starts `cmd` inside `ns` (network namespace only, see [`Netns::spawn`]) with stdout and stderr
/// written to the file `log`, which is created or truncated.
pub fn spawn_in(ns: &Netns, cmd: &mut Command, log: impl AsRef<Path>) -> Result<NsProcess> {
    let log = log.as_ref().to_path_buf();
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = ns.spawn(cmd)?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    Ok(NsProcess {
        child,
        log,
        program,
        status: None,
    })
}

/// A process started by [`spawn_in`]. Dropping it sends SIGTERM, then SIGKILL if it is still
/// running after a grace period.
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    log: PathBuf,
    program: String,
    status: Option<ExitStatus>,
}

impl NsProcess {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file receiving its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What it has written so far.
    pub fn log(&self) -> Result<String> {
        let bytes =
            fs::read(&self.log).with_context(|| format!("cannot read {}", self.log.display()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Its exit status if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("cannot wait for {}", self.program))?;
        }
        Ok(self.status)
    }

    /// Waits until its log contains `needle`; fails at once if it exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        poll_until(
            timeout,
            &format!("{} to log {needle:?}", self.program),
            || {
                if self.log()?.contains(needle) {
                    return Ok(Some(()));
                }
                if let Some(status) = self.try_wait()? {
                    bail!(
                        "{} exited ({status}) before logging {needle:?}:\n{}",
                        self.program,
                        self.log()?
                    );
                }
                Ok(None)
            },
        )
    }

    /// Sends SIGTERM and waits up to `grace` for it to exit, then kills it.
    pub fn stop(mut self, grace: Duration) -> Result<ExitStatus> {
        self.terminate(grace)
    }

    /// Sends SIGKILL at once and reaps it: it gets no chance to say goodbye (a BGP speaker
    /// sends no NOTIFICATION; its peers see the TCP connection close).
    pub fn kill(mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Not yet reaped, so the pid is still this process.
        self.child
            .kill()
            .with_context(|| format!("cannot kill {}", self.program))?;
        poll_until(KILL_WAIT, &format!("{} to die", self.program), || {
            self.try_wait()
        })
    }

    fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id())?);
        // Not yet reaped, so the pid is still this process.
        kill(pid, Signal::SIGTERM).with_context(|| format!("cannot signal {}", self.program))?;
        let exited = poll_until(grace, &format!("{} to exit", self.program), || {
            self.try_wait()
        });
        if let Ok(status) = exited {
            return Ok(status);
        }
        self.child
            .kill()
            .with_context(|| format!("cannot kill {}", self.program))?;
        poll_until(KILL_WAIT, &format!("{} to die", self.program), || {
            self.try_wait()
        })
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        if let Err(e) = self.terminate(DROP_GRACE) {
            eprintln!("rvs-testbed: {e:#}");
        }
    }
}
