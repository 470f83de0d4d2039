//! The rvs demo, all in network namespaces on this machine: a director balancing HTTP over real
//! servers by direct routing (configured with rvsadm, ipvsadm's syntax), the same servers through
//! GUE tunnels, and a NAT director configured by keepalived.conf whose health checks take a failed
//! server out and bring it back. Run as root; rvsd, rvsadm and rvs-rs are taken from the
//! directory this program is in.

mod daemon;
mod dr;
mod nat;

use anyhow::Result;

use daemon::Tools;

/// Steps in the whole demo.
const STEPS: usize = 6;

fn main() {
    if let Err(e) = run() {
        eprintln!("rvs-demo: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let tools = Tools::find()?;
    println!("rvs demo: one virtual server on one IP, real servers behind it, packets balanced");
    println!("by the director's XDP program.");
    dr::run(&tools)?;
    nat::run(&tools)?;
    println!("\nTorn down: namespaces, pinned maps and files removed.");
    Ok(())
}
