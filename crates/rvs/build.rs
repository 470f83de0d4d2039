//! Builds the XDP programs (crates/rvs-ebpf) for the BPF target with the pinned nightly and puts
//! them in OUT_DIR, where src/ebpf.rs embeds them.
//!
//! Written by hand rather than with aya-build 0.2.0, because that crate fixes the rustflags it
//! passes and offers no way to choose the BPF CPU version: the director needs `-C target-cpu=v3`
//! for atomic fetch-and-add (BPF_FETCH), which the kernel here supports.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

const PACKAGE: &str = "rvs-ebpf";
const PROGRAMS: &[&str] = &[
    "rvs-director",
    "rvs-pass",
    "rvs-decap",
    "rvs-bench-gen",
    "rvs-bench-fwd",
    "rvs-bench-sink",
];
const TARGET: &str = "bpfel-unknown-none";

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.join("../..").canonicalize()?;
    for dir in ["crates/rvs-ebpf", "crates/rvs-common", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=RVS_EBPF_TOOLCHAIN");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // One BPF build directory for every host profile, so debug, release and test builds share it.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bpf");
    let toolchain = toolchain(&workspace.join("crates/rvs-ebpf/rust-toolchain.toml"))?;

    // aya-ebpf reads the architecture of the kernel the programs run on (for its pt_regs
    // helpers) from this cfg: the host being built for, not the build machine.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let arch_cfg = format!("--cfg=bpf_target_arch=\"{arch}\"");
    let rustflags = [
        "-Ctarget-cpu=v3",
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
        arch_cfg.as_str(),
    ]
    .join("\x1f");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&workspace)
        .args(["run", &toolchain, "cargo", "build", "--locked", "--release"])
        .args(["--package", PACKAGE, "--bins", "--target", TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    // The outer cargo's settings name the host toolchain; the nested build must use its own.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd.status().with_context(|| {
        format!("running {cmd:?} (is rustup on PATH? see scripts/install-deps)")
    })?;
    if !status.success() {
        bail!(
            "building the XDP programs failed ({status}); scripts/install-deps installs the \
             nightly's rust-src and bpf-linker"
        );
    }
    for program in PROGRAMS {
        let built = target_dir.join(TARGET).join("release").join(program);
        fs::copy(&built, out_dir.join(program))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    Ok(())
}

/// The channel named in the eBPF crate's rust-toolchain.toml (overridable for experiments).
fn toolchain(file: &Path) -> anyhow::Result<String> {
    if let Ok(t) = env::var("RVS_EBPF_TOOLCHAIN") {
        return Ok(t);
    }
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .next()
        .with_context(|| format!("no channel in {}", file.display()))
}
