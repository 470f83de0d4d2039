//! Packet classification to firewall marks, for fwmark services. IPVS reads the mark iptables
//! put on the packet; XDP runs before netfilter, so rvs classifies by its own rules: a protocol,
//! a destination prefix and a destination port range give a mark, first matching rule first.
//!
//! The rules live in a longest-prefix-match trie keyed by (family, destination prefix). The
//! control plane compiles them so that each prefix's entry lists, in rule order, the rules of
//! that prefix and of every shorter prefix that contains it: one trie lookup and a short scan
//! find the first matching rule.

use crate::user_pod;

/// Most rules one prefix's entry holds (its own and those of the prefixes containing it).
pub const MAX_RULES_PER_PREFIX: usize = 16;
/// Capacity of the trie (distinct prefixes).
pub const MAX_PREFIXES: u32 = 4096;
/// Bits before the address in the key's data: the family byte.
pub const FAMILY_BITS: u32 = 8;

/// The data of a trie key: the family, then the address (IPv4 in the first 4 bytes). The
/// key's prefix length counts the family byte's 8 bits too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MarkPrefix {
    pub af: u8,
    pub addr: [u8; 16],
}

/// One rule: packets of `proto` (0: TCP and UDP) to a port in `port_lo..=port_hi` (host order)
/// get `mark`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkRule {
    pub mark: u32,
    pub port_lo: u16,
    pub port_hi: u16,
    pub proto: u8,
    pub _pad0: [u8; 3],
}

impl MarkRule {
    #[inline(always)]
    pub fn matches(&self, proto: u8, port: u16) -> bool {
        (self.proto == 0 || self.proto == proto) && self.port_lo <= port && port <= self.port_hi
    }
}

/// The value of a trie entry: the rules that apply to packets within its prefix, in order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkRules {
    pub count: u32,
    pub rules: [MarkRule; MAX_RULES_PER_PREFIX],
}

user_pod!(MarkPrefix, MarkRule, MarkRules);
