//! rvs as the harness drives it: rvsd spawned into a director's namespace (network namespace
//! only, so it sees /sys/fs/bpf), rvsadm pointed at its socket, rvs-rs run on real servers.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rvs_testbed::{Netns, NsProcess, spawn_in};

/// Where rvsd, rvsadm and rvs-rs are.
#[derive(Clone, Debug)]
pub struct Bins {
    pub rvsd: PathBuf,
    pub rvsadm: PathBuf,
    pub rvs_rs: PathBuf,
}

impl Bins {
    /// In `dir`, else `RVS_BIN_DIR`, else beside this executable (or one level up, for a test
    /// binary in target/*/deps).
    pub fn find(dir: Option<&Path>) -> Result<Bins> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(d) = dir {
            candidates.push(d.to_path_buf());
        }
        if let Some(d) = std::env::var_os("RVS_BIN_DIR") {
            candidates.push(d.into());
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(d) = exe.parent()
        {
            candidates.push(d.to_path_buf());
            if let Some(up) = d.parent() {
                candidates.push(up.to_path_buf());
            }
        }
        for d in &candidates {
            let b = Bins {
                rvsd: d.join("rvsd"),
                rvsadm: d.join("rvsadm"),
                rvs_rs: d.join("rvs-rs"),
            };
            if b.rvsd.is_file() && b.rvsadm.is_file() && b.rvs_rs.is_file() {
                return Ok(b);
            }
        }
        bail!(
            "rvsd, rvsadm and rvs-rs not found in {candidates:?}: build them (cargo build \
             --release -p rvs) or name their directory with --bin-dir or RVS_BIN_DIR"
        )
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running rvsd; stopped, its pins and state removed, when dropped.
pub struct Rvsd {
    proc: Option<NsProcess>,
    bins: Bins,
    dir: PathBuf,
    pin_dir: PathBuf,
}

impl Rvsd {
    /// Starts rvsd in `ns` on `interfaces` with a connection table of `table_size` flows.
    pub fn start(ns: &Netns, bins: &Bins, interfaces: &[&str], table_size: u32) -> Result<Rvsd> {
        Rvsd::start_with(ns, bins, interfaces, table_size, &[])
    }

    /// As [`Rvsd::start`], with more options (`-f FILE`, ...).
    pub fn start_with(
        ns: &Netns,
        bins: &Bins,
        interfaces: &[&str],
        table_size: u32,
        extra: &[&str],
    ) -> Result<Rvsd> {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("rvs-bench-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rvs-bench-{tag}"));
        let mut rvsd = Rvsd {
            proc: None,
            bins: bins.clone(),
            dir,
            pin_dir,
        };
        let mut cmd = Command::new(&bins.rvsd);
        for i in interfaces {
            cmd.args(["--interface", i]);
        }
        cmd.args(["--conn-table-size", &table_size.to_string()])
            .arg("--socket")
            .arg(rvsd.socket())
            .arg("--pin-dir")
            .arg(&rvsd.pin_dir)
            .arg("--state-file")
            .arg(rvsd.dir.join("state.json"))
            .args(extra)
            .env("RVS_LOG", "warn,rvs=info");
        let mut p = spawn_in(ns, &mut cmd, rvsd.dir.join("rvsd.log"))?;
        // A director with connection sync serves rvsadm once its bulk sync is over.
        p.wait_for_log("serving rvsadm", Duration::from_secs(180))
            .context("rvsd did not come up")?;
        rvsd.proc = Some(p);
        Ok(rvsd)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("rvsd.sock")
    }

    /// Its own directory: socket, state file, log and what it keeps beside its state (the
    /// monitor's self-signed certificate).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bpffs directory of its pinned maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// `kill -9`: it dies without a word (its XDP program and pins stay until this handle is
    /// dropped).
    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.take() {
            // SAFETY: kill has no memory preconditions; the child is not yet reaped, so the pid
            // is still this process.
            unsafe {
                libc::kill(p.pid() as i32, libc::SIGKILL);
            }
            // Dropping reaps it (SIGTERM to a dead process is harmless).
            drop(p);
        }
    }

    /// The pinned map `name` (bpffs path).
    pub fn pin(&self, name: &str) -> PathBuf {
        self.pin_dir.join(name)
    }

    /// Runs rvsadm with `args` (and `stdin`), returns its stdout.
    pub fn rvsadm_in(&self, args: &[&str], stdin: &str) -> Result<String> {
        let mut child = Command::new(&self.bins.rvsadm)
            .args(args)
            .env("RVS_SOCKET", self.socket())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting rvsadm")?;
        child
            .stdin
            .take()
            .context("rvsadm stdin")?
            .write_all(stdin.as_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("rvsadm {args:?} took over 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "rvsadm {args:?} failed ({}): {}\nrvsd log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn rvsadm(&self, args: &[&str]) -> Result<String> {
        self.rvsadm_in(args, "")
    }

    /// Replaces the whole configuration by `rules` (`ipvsadm-save` lines, fed to `-R`).
    pub fn configure(&self, rules: &str) -> Result<()> {
        self.rvsadm(&["-C"])?;
        self.rvsadm_in(&["-R"], rules).map(drop)
    }

    /// The data plane's counters (`rvsadm --dataplane`).
    pub fn dataplane(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .rvsadm(&["--dataplane"])?
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// rvsd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(NsProcess::pid)
    }

    pub fn log(&self) -> String {
        self.proc
            .as_ref()
            .and_then(|p| p.log().ok())
            .unwrap_or_default()
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            let _ = p.stop(Duration::from_secs(10));
        }
        let _ = Command::new(&self.bins.rvsd)
            .arg("--cleanup")
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-file")
            .arg(self.dir.join("state.json"))
            .arg("--socket")
            .arg(self.socket())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what rvsd instances of dead harness runs left pinned in bpffs (their connection
/// tables hold hundreds of MiB of kernel memory) and in the temporary directory.
pub fn cleanup_stale(bins: &Bins) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(tag) = name.strip_prefix("rvs-bench-") else {
            continue;
        };
        let Some(pid) = tag.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid <= 0 || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = std::env::temp_dir().join(&name);
        let _ = Command::new(&bins.rvsd)
            .arg("--cleanup")
            .arg("--pin-dir")
            .arg(e.path())
            .arg("--state-file")
            .arg(dir.join("state.json"))
            .arg("--socket")
            .arg(dir.join("rvsd.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// CPU time (user + system) process `pid` has used so far.
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) in parentheses: utime is the 14th field
    // of the line, stime the 15th.
    let rest = stat.rsplit_once(')').context("odd /proc/PID/stat")?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() == 2, "odd /proc/{pid}/stat");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos((f[0] + f[1]) * 1_000_000_000 / hz))
}

/// The id of the XDP program attached to `ifname` in `ns`.
pub fn xdp_prog_id(ns: &Netns, ifname: &str) -> Result<u32> {
    let out = ns.ip(&["-j", "-d", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v.get(0)
        .and_then(|l| l.get("xdp"))
        .and_then(|x| x.get("prog"))
        .and_then(|p| p.get("id"))
        .and_then(|id| id.as_u64())
        .map(|id| id as u32)
        .with_context(|| format!("no XDP program on {ifname} in {}", ns.name()))
}
