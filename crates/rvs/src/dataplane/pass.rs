//! The pass-all XDP program, attached by test topologies to the far end of veths that a director
//! transmits into (a veth delivers XDP_TX and redirected frames only when its peer runs NAPI).

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    programs::{Xdp, XdpMode},
};

use crate::ebpf;

/// An attached pass program; dropping it detaches it.
pub struct PassProgram {
    _ebpf: Ebpf,
}

/// Attaches the pass program in driver mode to `ifindex` in the calling thread's network namespace.
pub fn attach_pass_program(ifindex: u32) -> Result<PassProgram> {
    let mut bpf = Ebpf::load(ebpf::PASS).context("loading the pass program")?;
    let prog: &mut Xdp = bpf
        .program_mut("rvs_pass")
        .context("rvs_pass missing from the object")?
        .try_into()?;
    prog.load().context("loading rvs_pass into the kernel")?;
    prog.attach_to_if_index(ifindex, XdpMode::Driver)
        .with_context(|| format!("attaching rvs_pass to ifindex {ifindex}"))?;
    Ok(PassProgram { _ebpf: bpf })
}
