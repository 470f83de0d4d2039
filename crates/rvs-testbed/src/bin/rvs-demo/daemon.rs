//! rvsd and rvsadm as the demo runs them: one rvsd per director, in its namespace, with its own
//! socket, pins and files, removed at the end.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rvs_testbed::{Host, NsProcess};

pub struct Tools {
    pub rvsd: PathBuf,
    pub rvsadm: PathBuf,
    pub rvs_rs: PathBuf,
}

impl Tools {
    /// rvsd, rvsadm and rvs-rs from the directory this program is in.
    pub fn find() -> Result<Tools> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("no directory for this program")?;
        let tools = Tools {
            rvsd: dir.join("rvsd"),
            rvsadm: dir.join("rvsadm"),
            rvs_rs: dir.join("rvs-rs"),
        };
        for b in [&tools.rvsd, &tools.rvsadm, &tools.rvs_rs] {
            if !b.exists() {
                bail!(
                    "{} is missing; build with `cargo build --release` first",
                    b.display()
                );
            }
        }
        Ok(tools)
    }
}

/// A running rvsd. Dropping it stops it and removes its pins and files.
pub struct Rvsd<'a> {
    tools: &'a Tools,
    process: Option<NsProcess>,
    pub work: PathBuf,
    pin_dir: PathBuf,
}

impl<'a> Rvsd<'a> {
    /// Starts rvsd on `director`'s `interfaces` with extra `args`.
    pub fn start(
        tools: &'a Tools,
        director: &Host,
        tag: &str,
        interfaces: &[&str],
        args: &[&str],
    ) -> Result<Rvsd<'a>> {
        let work = std::env::temp_dir().join(format!("rvs-demo-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rvs-demo-{}-{tag}", std::process::id()));
        let mut cmd = Command::new(&tools.rvsd);
        for i in interfaces {
            cmd.args(["--interface", i]);
        }
        cmd.args(["--conn-table-size", "65536"])
            .arg("--socket")
            .arg(work.join("rvsd.sock"))
            .arg("--pin-dir")
            .arg(&pin_dir)
            .arg("--state-file")
            .arg(work.join("state.json"))
            .args(args)
            .env(
                "RVS_LOG",
                "warn,rvsd=info,rvs::daemon::supervisor=info,rvs::daemon::keepalived=info,rvs::check=info",
            );
        let mut process = director.spawn(&mut cmd, work.join("rvsd.log"))?;
        if let Err(e) = process.wait_for_log("serving rvsadm", Duration::from_secs(20)) {
            bail!(
                "rvsd did not start: {e:#}\n{}",
                process.log().unwrap_or_default()
            );
        }
        Ok(Rvsd {
            tools,
            process: Some(process),
            work,
            pin_dir,
        })
    }

    /// Runs rvsadm against this rvsd (echoing the command when `show`); fails on failure.
    pub fn rvsadm(&self, args: &[&str], show: bool) -> Result<String> {
        if show {
            println!("  $ rvsadm {}", args.join(" "));
        }
        let out = Command::new(&self.tools.rvsadm)
            .args(args)
            .env("RVS_SOCKET", self.work.join("rvsd.sock"))
            .output()?;
        if !out.status.success() {
            bail!(
                "rvsadm {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs rvsadm and prints its output indented.
    pub fn show(&self, args: &[&str]) -> Result<()> {
        for line in self.rvsadm(args, true)?.lines() {
            println!("  {line}");
        }
        Ok(())
    }

    /// rvsd's log so far.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .and_then(|p| p.log().ok())
            .unwrap_or_default()
    }
}

impl Drop for Rvsd<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.stop(Duration::from_secs(5));
        }
        let _ = Command::new(&self.tools.rvsd)
            .arg("--cleanup")
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-file")
            .arg(self.work.join("state.json"))
            .arg("--socket")
            .arg(self.work.join("rvsd.sock"))
            .output();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Who answered `n` requests from `client` to `vip:port`, as indexes into `names`.
pub fn ask_many(
    client: &Host,
    vip: std::net::IpAddr,
    port: u16,
    n: usize,
    names: &[&str],
) -> Result<Vec<usize>> {
    (0..n)
        .map(|_| {
            let name = client.http_get(vip, port)?;
            names
                .iter()
                .position(|n| *n == name)
                .with_context(|| format!("unexpected answer {name:?}"))
        })
        .collect()
}

/// Prints who answered, as a sequence and a bar per server.
pub fn histogram(answers: &[usize], labels: &[String]) {
    let order: String = answers.iter().map(|i| i.to_string()).collect();
    println!("  answered by: {order}");
    for (i, label) in labels.iter().enumerate() {
        let n = answers.iter().filter(|&&a| a == i).count();
        println!("  {label:<16} {n:>3} {}", "#".repeat(n));
    }
}

pub fn step(n: usize, total: usize, text: &str) {
    println!("\n\x1b[1m[{n}/{total}] {text}\x1b[0m");
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
