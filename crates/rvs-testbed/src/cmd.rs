//! Running short configuration commands (`ip`, `sysctl`) and turning failures into errors that
//! show the command line and its stderr.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `program args...` to completion and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let line = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{}`", line()))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            line(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", line()))
}
