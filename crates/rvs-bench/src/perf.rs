//! A machine-wide CPU profile with `perf record -a` while a measurement runs, summarised as the
//! symbols with the largest shares of the samples. JIT-compiled BPF programs show up as
//! `bpf_prog_<tag>_<name>`.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::report::Profile;

/// A running `perf record`.
pub struct Recording {
    child: Child,
    file: std::path::PathBuf,
}

/// Starts sampling every CPU for `time` into `file`.
pub fn record(file: &Path, time: Duration) -> Result<Recording> {
    let child = Command::new("perf")
        .args(["record", "-a", "-F", "2999", "-q", "-o"])
        .arg(file)
        .args(["--", "sleep", &format!("{:.2}", time.as_secs_f64())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    Ok(Recording {
        child,
        file: file.to_path_buf(),
    })
}

impl Recording {
    /// Waits for the recording to end and reads the `top` largest symbols.
    pub fn finish(mut self, case: &str, top: usize) -> Result<Profile> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("perf record failed ({status})");
                }
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("perf record did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--sort",
                "sym",
                "--percent-limit",
                "0.01",
                "-i",
            ])
            .arg(&self.file)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .context("perf report")?;
        let _ = std::fs::remove_file(&self.file);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut profile = parse(&text);
        profile.case = case.to_owned();
        profile.groups = group(&profile.top);
        profile.top.truncate(top);
        Ok(profile)
    }
}

fn parse(text: &str) -> Profile {
    let mut total = 0;
    let mut top = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("# Samples:") {
            total = rest
                .split_whitespace()
                .next()
                .and_then(parse_count)
                .unwrap_or(0);
            continue;
        }
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let mut w = l.split_whitespace();
        let (Some(pct), Some(_kind)) = (w.next(), w.next()) else {
            continue;
        };
        let Ok(pct) = pct.trim_end_matches('%').parse::<f64>() else {
            continue;
        };
        let sym: Vec<&str> = w.collect();
        top.push((pct, sym.join(" ")));
    }
    Profile {
        case: String::new(),
        total_samples: total,
        top,
        groups: Vec::new(),
    }
}

/// Where a symbol's time belongs, roughly; the first matching rule wins.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "generator (BPF_PROG_RUN)",
        &["rvs_bench_gen", "xdp_test_run", "bpf_test_"],
    ),
    ("sink", &["rvs_bench_sink"]),
    ("balancer's BPF programs", &["bpf_prog_"]),
    (
        "BPF hash-map lookups and updates",
        &[
            "htab_",
            "lookup_nulls_elem",
            "lookup_elem_raw",
            "memcmp",
            "jhash",
            "pcpu_freelist",
        ],
    ),
    ("clock reads", &["read_tsc", "ktime_get", "bpf_ktime"]),
    (
        "netfilter, conntrack, NAT",
        &["nf_", "nft_", "conntrack", "siphash", "nat_"],
    ),
    (
        "kernel IP stack and socket buffers",
        &[
            "ip_",
            "skb",
            "kmem_cache",
            "slab",
            "fib_",
            "netif_",
            "napi_",
            "dst_",
            "__dev_queue",
            "dev_hard_start",
            "sch_",
            "neigh_",
            "eth_type_trans",
            "build_skb",
            "kfree",
            "gro",
            "rt_",
            "tcp_",
            "udp_",
            "flow_dissect",
            "inet_",
        ],
    ),
    (
        "veth, XDP redirect, page pool",
        &[
            "veth_",
            "xdp_",
            "bq_",
            "dev_map",
            "page_pool",
            "dev_get_by_index",
            "bpf_dispatcher",
        ],
    ),
    ("locks", &["spin", "queued_", "lock"]),
    ("idle", &["safe_halt", "default_idle", "cpuidle", "do_idle"]),
];

/// The shares of the profile's symbols by [`GROUPS`] (and "other").
fn group(symbols: &[(f64, String)]) -> Vec<(String, f64)> {
    let mut shares: Vec<(String, f64)> = GROUPS
        .iter()
        .map(|(g, _)| ((*g).to_owned(), 0.0))
        .chain([("other".to_owned(), 0.0)])
        .collect();
    for (pct, sym) in symbols {
        let i = GROUPS
            .iter()
            .position(|(_, pats)| pats.iter().any(|p| sym.contains(p)))
            .unwrap_or(GROUPS.len());
        shares[i].1 += pct;
    }
    shares
}

/// perf's sample counts: `12K`, `801`.
fn parse_count(n: &str) -> Option<u64> {
    match n.strip_suffix('K') {
        Some(k) => Some((k.parse::<f64>().ok()? * 1000.0) as u64),
        None => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_report() {
        let text = "# Samples: 12K of event 'cpu-clock:pppH'\n#\n    21.50%  [k] veth_xdp_rcv\n\
                    \x20    3.10%  [k] bpf_prog_6deef7357e7b4530_rvs_director\n";
        let p = parse(text);
        assert_eq!(p.total_samples, 12000);
        assert_eq!(p.top[0], (21.5, "veth_xdp_rcv".to_owned()));
        assert_eq!(p.top[1].1, "bpf_prog_6deef7357e7b4530_rvs_director");
    }
}
