//! The XDP programs, compiled by build.rs for the BPF target and embedded here.

/// The director program (`rvs_director`) and its maps.
pub static DIRECTOR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-director"));

/// A program that passes every frame (`rvs_pass`); test topologies attach it to veth peers.
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-pass"));

/// The real servers' tunnel decapsulation program (`rvs_decap`), attached by `rvs-rs`.
pub static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-decap"));

/// The benchmark's XDP-frame generator (`rvs_bench_gen`), run with BPF_PROG_RUN by rvs-bench.
pub static BENCH_GEN: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-bench-gen"));

/// The benchmark's ceiling: a forwarder that only re-addresses frames (`rvs_bench_fwd`).
pub static BENCH_FWD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-bench-fwd"));

/// The benchmark's sink at the real servers: counts and drops (`rvs_bench_sink`).
pub static BENCH_SINK: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs-bench-sink"));
