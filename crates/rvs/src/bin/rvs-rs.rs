//! rvs-rs: prepares a real server for an rvs director (direct routing or IP tunnelling).
//!
//!   rvs-rs up   --vip 192.0.2.10 [--vip ...] --interface eth0 [--decap ipip|gre|gue [--gue-port P]]
//!   rvs-rs down --vip 192.0.2.10 [--vip ...] --interface eth0

use std::net::IpAddr;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rvs-rs",
    version,
    about = "Prepare a real server for an rvs director"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Hold the VIPs on lo without answering ARP for them; with --decap, attach the tunnel
    /// decapsulation program to the interface.
    Up {
        #[arg(long = "vip", required = true)]
        vips: Vec<IpAddr>,
        #[arg(short, long, default_value = "eth0")]
        interface: String,
        /// Tunnel type to decapsulate: ipip (also IPv6-in-IPv6 and across families) and gre
        /// (the same program takes both), or gue on --gue-port (and ipip and gre).
        #[arg(long)]
        decap: Option<String>,
        /// The GUE port (--decap gue).
        #[arg(long)]
        gue_port: Option<u16>,
    },
    /// Remove the VIPs from lo and the decapsulation program from the interface.
    Down {
        #[arg(long = "vip", required = true)]
        vips: Vec<IpAddr>,
        #[arg(short, long, default_value = "eth0")]
        interface: String,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-rs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.cmd {
        Cmd::Up {
            vips,
            interface,
            decap,
            gue_port,
        } => {
            let decap = decap
                .map(|d| rvs::realserver::parse_decap(&d, gue_port))
                .transpose()?;
            rt.block_on(rvs::realserver::up(&vips, &interface, decap))
        }
        Cmd::Down { vips, interface } => rt.block_on(rvs::realserver::down(&vips, &interface)),
    }
}
