//! The counting schedulers over real packets: for lc, wlc, sed, nq, fo and ovf, a run of new
//! connections (some kept open, some closed) where every server the director picks must be the one
//! the reference implementation of the kernel's rule picks from the same counts, and the counts
//! rvsadm shows must be the ones the client can tell from its own connections.

mod common;

use std::collections::HashMap;

use common::{Lab, counts};
use rvs::sched::{candidate::Candidate, fo, lc, nq, ovf, sed, wlc};
use rvs_testbed::TcpConn;

const PORT: u16 = 80;

/// A small deterministic generator (the runs must be reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn run(scheduler: &str, weights: &[i32], seed: u64, reference: fn(&[Candidate]) -> Option<usize>) {
    let lab = Lab::new(weights.len(), PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", scheduler]);
    for (i, w) in weights.iter().enumerate() {
        lab.ok(&[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-w",
            &w.to_string(),
        ]);
    }
    // The kernel's list is newest first: rs(n-1) .. rs0.
    let order: Vec<usize> = (0..weights.len()).rev().collect();
    let name_index: HashMap<String, usize> =
        (0..weights.len()).map(|i| (format!("rs{i}"), i)).collect();
    let mut active = vec![0u32; weights.len()];
    let mut inactive = vec![0u32; weights.len()];
    let mut open: Vec<(usize, TcpConn)> = Vec::new();
    let mut rng = Lcg(seed);
    for step in 0..24 {
        if !open.is_empty() && rng.next(3) == 0 {
            // Close one: it moves to FIN_WAIT, an inactive state, until it expires.
            let (i, conn) = open.swap_remove(rng.next(open.len() as u64) as usize);
            drop(conn);
            active[i] -= 1;
            inactive[i] += 1;
            let want = (active.clone(), inactive.clone());
            lab.eventually("the close to be counted", || shown(&lab, &order) == want);
            continue;
        }
        let list: Vec<Candidate> = order
            .iter()
            .map(|&i| Candidate {
                weight: weights[i],
                active: active[i],
                inactive: inactive[i],
                overloaded: false,
            })
            .collect();
        assert_eq!(
            shown(&lab, &order),
            (active.clone(), inactive.clone()),
            "step {step}"
        );
        let expected = reference(&list).map(|pos| order[pos]);
        let mut conn = match lab.cluster.client().open_tcp(lab.vip(), PORT) {
            Ok(c) => c,
            Err(e) => {
                assert_eq!(
                    expected, None,
                    "step {step}: no connection but {expected:?} expected: {e:#}"
                );
                continue;
            }
        };
        let got = name_index[&conn.ask("which").unwrap()];
        assert_eq!(Some(got), expected, "{scheduler} step {step}: {list:?}");
        active[got] += 1;
        open.push((got, conn));
    }
}

/// (active, inactive) per real server (indexed by server, not list position), as rvsadm shows.
fn shown(lab: &Lab, order: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let listing = lab.ok(&["-L", "-n", "--nosort"]);
    let rows = counts(&listing);
    let mut active = vec![0; order.len()];
    let mut inactive = vec![0; order.len()];
    for (pos, row) in rows.iter().enumerate() {
        active[order[pos]] = row.1 as u32;
        inactive[order[pos]] = row.2 as u32;
    }
    (active, inactive)
}

/// Weights for a second run of each scheduler, drawn from `seed` (1..=4 each, some 0).
fn drawn(seed: u64) -> Vec<i32> {
    let mut rng = Lcg(seed);
    (0..3).map(|_| rng.next(5) as i32).collect()
}

#[test]
fn lc_follows_the_kernel() {
    run("lc", &[1, 3, 2], 1, lc::pick);
    run("lc", &drawn(11), 11, lc::pick);
}

#[test]
fn wlc_follows_the_kernel() {
    run("wlc", &[1, 3, 2], 2, wlc::pick);
    run("wlc", &drawn(12), 12, wlc::pick);
}

#[test]
fn sed_follows_the_kernel() {
    run("sed", &[2, 1, 4], 3, sed::pick);
    run("sed", &drawn(13), 13, sed::pick);
}

#[test]
fn nq_follows_the_kernel() {
    run("nq", &[1, 2, 1], 4, nq::pick);
    run("nq", &drawn(14), 14, nq::pick);
}

#[test]
fn fo_follows_the_kernel() {
    run("fo", &[2, 5, 5], 5, fo::pick);
    run("fo", &drawn(15), 15, fo::pick);
}

#[test]
fn ovf_follows_the_kernel() {
    run("ovf", &[1, 2, 3], 6, ovf::pick);
    run("ovf", &drawn(16), 16, ovf::pick);
}
