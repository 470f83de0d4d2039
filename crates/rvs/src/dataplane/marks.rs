//! Writing the mark rules into the classification trie: every compiled prefix is written (a
//! replace is atomic for readers), then prefixes no longer wanted are removed.

use std::net::IpAddr;

use anyhow::{Context, Result};
use rvs_common::{
    AF_INET, AF_INET6,
    mark::{FAMILY_BITS, MAX_RULES_PER_PREFIX, MarkPrefix, MarkRule as RuleEntry, MarkRules},
};

use super::store::MapsWrite;
use crate::model::{CompiledPrefix, MarkRule, compile_mark_rules};

/// The trie key of a prefix: (length in bits, including the family byte; data).
fn trie_key(addr: IpAddr, prefix_len: u8) -> (u32, MarkPrefix) {
    let mut data = MarkPrefix::default();
    match addr {
        IpAddr::V4(a) => {
            data.af = AF_INET;
            data.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            data.af = AF_INET6;
            data.addr = a.octets();
        }
    }
    (FAMILY_BITS + prefix_len as u32, data)
}

fn entry(p: &CompiledPrefix) -> MarkRules {
    let mut out = MarkRules::default();
    for (slot, r) in out.rules.iter_mut().zip(p.rules.iter()) {
        *slot = RuleEntry {
            mark: r.mark,
            port_lo: r.port_lo,
            port_hi: r.port_hi,
            proto: r.proto.map_or(0, |p| p.number()),
            _pad0: [0; 3],
        };
    }
    out.count = p.rules.len().min(MAX_RULES_PER_PREFIX) as u32;
    out
}

/// Makes the trie hold exactly `rules`.
pub fn write_mark_rules(maps: &mut dyn MapsWrite, rules: &[MarkRule]) -> Result<()> {
    let compiled = compile_mark_rules(rules).map_err(anyhow::Error::msg)?;
    let wanted: Vec<(u32, MarkPrefix)> = compiled
        .iter()
        .map(|p| trie_key(p.addr, p.prefix_len))
        .collect();
    for (p, (bits, key)) in compiled.iter().zip(&wanted) {
        maps.set_mark_prefix(*bits, *key, entry(p))
            .with_context(|| format!("writing the mark rules of {}/{}", p.addr, p.prefix_len))?;
    }
    let stale: Vec<(u32, MarkPrefix)> = maps
        .mark_prefixes()
        .into_iter()
        .filter(|k| !wanted.contains(k))
        .collect();
    for (bits, key) in stale {
        maps.remove_mark_prefix(bits, key)
            .context("removing a stale mark prefix")?;
    }
    Ok(())
}
