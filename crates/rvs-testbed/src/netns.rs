//! A named network namespace (`/run/netns/NAME`) owned by this process and deleted on drop.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Seek},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nix::{
    sched::{CloneFlags, setns},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{cmd, names, poll::poll_until};

const NETNS_DIR: &str = "/run/netns";
/// How long deleting a namespace waits for the processes in it to die.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a command given to `Host::run` may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A network namespace created by this library. Dropping it kills every process inside and
/// deletes it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a fresh unique name `rvs-<pid>-<n>-<role>`, with `lo` up.
    pub fn new(role: &str) -> Result<Self> {
        Self::create(names::netns_name(&names::new_topology_id(), role))
    }

    /// Creates the namespace `name` (which must come from [`names`]), with `lo` up.
    pub(crate) fn create(name: String) -> Result<Self> {
        debug_assert!(names::creator_pid(&name) == Some(std::process::id()));
        if Path::new(NETNS_DIR).join(&name).exists() {
            // Our pid and counter make the name unique within this process, so this is left over
            // from a dead process that had our pid.
            remove(&name).with_context(|| format!("cannot remove stale namespace {name}"))?;
        }
        cmd::run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME args...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let argv: Vec<&str> = ["-n", self.name.as_str()]
            .iter()
            .chain(args)
            .copied()
            .collect();
        cmd::run("ip", &argv)
    }

    /// Runs a short command inside through `ip netns exec` and returns its stdout.
    ///
    /// `ip netns exec` also gives the command a private mount namespace with this namespace's
    /// /sys; use [`Netns::spawn`] for programs that need the host's /sys/fs/bpf.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let full: Vec<&str> = ["netns", "exec", self.name.as_str()]
            .iter()
            .chain(argv)
            .copied()
            .collect();
        cmd::run("ip", &full)
    }

    /// Sets sysctls inside, each given as `key=value`.
    pub fn sysctl(&self, settings: &[&str]) -> Result<()> {
        let argv: Vec<&str> = ["sysctl", "-q", "-w"]
            .iter()
            .chain(settings)
            .copied()
            .collect();
        self.exec(&argv).map(drop)
    }

    /// Runs `f` on the current thread switched into this namespace, then switches back.
    ///
    /// Sockets created in `f` belong to this namespace for their whole life; threads spawned in
    /// `f` start inside it.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let target = File::open(self.path())
            .with_context(|| format!("cannot open namespace {}", self.name))?;
        let original = File::open("/proc/thread-self/ns/net")
            .context("cannot open this thread's network namespace")?;
        setns(&target, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("cannot enter namespace {}", self.name))?;
        let _restore = Restore(original);
        Ok(f())
    }

    /// Starts `cmd` inside this namespace.
    ///
    /// Only the network namespace changes (unlike `ip netns exec`, which also remounts /sys and
    /// so hides /sys/fs/bpf): the child is forked from a thread switched in with setns.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        self.enter(|| cmd.spawn())?
            .with_context(|| format!("cannot start {program} in namespace {}", self.name))
    }

    /// Runs `cmd` inside to completion, like [`Netns::spawn`] (so it sees the machine's
    /// /sys/fs/bpf), and returns its stdout. Fails with its stderr if it exits unsuccessfully,
    /// and kills it if it runs longer than `timeout`.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<String> {
        let line = format!("{cmd:?}");
        // Files rather than pipes: a daemon it leaves behind may hold them open forever.
        let (mut out, mut err) = (unnamed_file()?, unnamed_file()?);
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(err.try_clone()?);
        let mut child = self.spawn(cmd)?;
        let waited = poll_until(timeout, &format!("{line} to finish"), || {
            Ok(child.try_wait()?)
        });
        let status = match waited {
            Ok(status) => status,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.context(format!("in namespace {}", self.name)));
            }
        };
        let read = |file: &mut File| -> Result<String> {
            let mut text = String::new();
            file.rewind()?;
            file.read_to_string(&mut text)?;
            Ok(text)
        };
        if !status.success() {
            bail!(
                "{line} failed ({status}) in namespace {}: {}",
                self.name,
                read(&mut err)?.trim()
            );
        }
        read(&mut out).with_context(|| format!("cannot read the output of {line}"))
    }

    /// The interface index of `ifname` inside this namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        self.enter(|| nix::net::if_::if_nametoindex(ifname))?
            .with_context(|| format!("no interface {ifname} in namespace {}", self.name))
    }

    /// The processes whose network namespace is this one (threads of other namespaces' processes
    /// are not seen).
    pub fn pids(&self) -> Result<Vec<i32>> {
        pids_in(&self.name)
    }

    /// Kills every process inside and deletes the namespace, reporting failure (drop only logs).
    pub fn delete(self) -> Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        remove(&std::mem::take(&mut this.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.name) {
            eprintln!("rvs-testbed: {e:#}");
        }
    }
}

/// Switches the thread back to its original namespace, also when the closure panics.
struct Restore(File);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.0, CloneFlags::CLONE_NEWNET) {
            // Going on would run the rest of this thread in a test namespace.
            eprintln!("rvs-testbed: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

/// Kills the processes inside the namespace `name`, then deletes it. A namespace that no longer
/// exists counts as deleted.
pub(crate) fn remove(name: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(name);
    if !path.exists() {
        return Ok(());
    }
    kill_all(name)?;
    match cmd::run("ip", &["netns", "delete", name]) {
        Err(e) if path.exists() => Err(e.context(format!("cannot delete namespace {name}"))),
        _ => Ok(()),
    }
}

/// Sends SIGKILL to every process in the namespace until none is left. Our own process is spared:
/// its main thread may be inside through [`Netns::enter`].
fn kill_all(name: &str) -> Result<()> {
    let own = std::process::id() as i32;
    poll_until(
        KILL_TIMEOUT,
        &format!("the processes in namespace {name} to die"),
        || {
            let pids: Vec<i32> = pids_in(name)?.into_iter().filter(|&p| p != own).collect();
            for &pid in &pids {
                // It may have died since the scan; only a live one matters.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Ok(pids.is_empty().then_some(()))
        },
    )
}

/// The pids whose `/proc/PID/ns/net` is the namespace `name`.
fn pids_in(name: &str) -> Result<Vec<i32>> {
    let path = Path::new(NETNS_DIR).join(name);
    let target = match fs::metadata(&path) {
        Ok(target) => target,
        // Deleted meanwhile (by a concurrent cleanup): nothing is inside any more.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("cannot stat {}", path.display())),
    };
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").context("cannot list /proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Processes come and go during the scan; one that cannot be read is not a concern.
        let Ok(ns) = fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if (ns.dev(), ns.ino()) == (target.dev(), target.ino()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// A file without a name, gone once closed, to collect a command's output.
fn unnamed_file() -> Result<File> {
    let dir = std::env::temp_dir();
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))
}

/// The names of the namespaces in /run/netns.
pub(crate) fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("cannot list {NETNS_DIR}")),
    };
    entries
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {NETNS_DIR}"))
}
