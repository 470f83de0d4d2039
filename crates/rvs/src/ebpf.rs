//! The XDP programs, compiled by build.rs for the BPF target and embedded here.

/// The director program (`rvs_director`) and its maps.
pub static DIRECTOR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-director"));

/// A program that passes every frame (`rvs_pass`); test topologies attach it to veth peers.
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-pass"));

/// The real servers' tunnel decapsulation program (`rvs_decap`), attached by `rvs-rs`.
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-decap"));
