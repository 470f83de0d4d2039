//! Classifying a packet to a firewall mark by rvs's own rules (see rvs_common::mark): the
//! longest matching destination prefix's entry lists every rule that covers the packet's
//! address, in rule order; the first whose protocol and port range match gives the mark.

use aya_ebpf::maps::lpm_trie::Key;
use rvs_common::{
    AF_INET6,
    mark::{FAMILY_BITS, MAX_RULES_PER_PREFIX, MarkPrefix},
};

use crate::{maps::MARK_RULES, sched::Flow};

/// The mark of the first rule that matches `flow`, if any.
#[inline(always)]
pub fn classify(flow: &Flow) -> Option<u32> {
    let mut data = MarkPrefix {
        af: flow.af,
        addr: [0; 16],
    };
    let words = if flow.af == AF_INET6 { 4 } else { 1 };
    // All four words (an IPv4 flow's last three are zero): a copy of a length that depends on
    // the family became a memset the verifier could not bound where the family is not a
    // constant on each path.
    for i in 0..4 {
        data.addr[i * 4..i * 4 + 4].copy_from_slice(&flow.daddr[i].to_ne_bytes());
    }
    let key = Key::new(FAMILY_BITS + words as u32 * 32, data);
    let entry = MARK_RULES.get(&key)?;
    let port = u16::from_be(flow.dport);
    let count = (entry.count as usize).min(MAX_RULES_PER_PREFIX);
    for rule in entry.rules.iter().take(count) {
        if rule.matches(flow.proto, port) {
            return Some(rule.mark);
        }
    }
    None
}
