//! Rules that give packets a firewall mark, for fwmark services. With IPVS an iptables rule
//! (`-t mangle -A PREROUTING -p tcp -d 198.51.100.0/24 --dport 80:443 -j MARK --set-mark 1`)
//! marks the packets; rvs's XDP program runs before netfilter, so it classifies by these rules
//! itself. A rule is written `PROTO:PREFIX[:PORT[-PORT]]`, e.g. `tcp:198.18.0.100:80-443`,
//! `udp:198.18.0.0/24`, `any:[2001:db8::]/64:53`; the first rule that matches a packet wins.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

use super::Protocol;

/// One classification rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarkRule {
    /// The mark given (non-zero).
    pub mark: u32,
    /// TCP or UDP; None for both.
    pub proto: Option<Protocol>,
    /// The destination network (host bits zero).
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Destination ports, inclusive.
    pub port_lo: u16,
    pub port_hi: u16,
}

/// The part of a rule that says which packets it takes (everything but the mark).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkMatch {
    pub proto: Option<Protocol>,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub port_lo: u16,
    pub port_hi: u16,
}

impl MarkMatch {
    pub fn with_mark(self, mark: u32) -> MarkRule {
        MarkRule {
            mark,
            proto: self.proto,
            addr: self.addr,
            prefix_len: self.prefix_len,
            port_lo: self.port_lo,
            port_hi: self.port_hi,
        }
    }
}

impl MarkRule {
    pub fn matcher(&self) -> MarkMatch {
        MarkMatch {
            proto: self.proto,
            addr: self.addr,
            prefix_len: self.prefix_len,
            port_lo: self.port_lo,
            port_hi: self.port_hi,
        }
    }
}

/// Keeps the first `len` bits of `addr`.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32) as u32)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128) as u32)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl FromStr for MarkMatch {
    type Err = String;

    fn from_str(s: &str) -> Result<MarkMatch, String> {
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| "expected PROTO:ADDRESS[/LEN][:PORT[-PORT]]".to_owned())?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "any" => None,
            other => return Err(format!("unknown protocol `{other}' (tcp, udp or any)")),
        };
        // IPv6 in brackets, the prefix length inside or after them: [2001:db8::]/64 or
        // [2001:db8::/64].
        let (net, ports) = if let Some(inner) = rest.strip_prefix('[') {
            let (inside, after) = inner
                .split_once(']')
                .ok_or_else(|| "missing `]' after an IPv6 address".to_owned())?;
            let (len, ports) = match after.strip_prefix('/') {
                Some(l) => match l.split_once(':') {
                    Some((l, p)) => (Some(l), Some(p)),
                    None => (Some(l), None),
                },
                None => match after.strip_prefix(':') {
                    Some(p) => (None, Some(p)),
                    None if after.is_empty() => (None, None),
                    None => return Err(format!("unexpected `{after}' after `]'")),
                },
            };
            let net = match (inside.split_once('/'), len) {
                (Some(_), Some(_)) => return Err("two prefix lengths".to_owned()),
                (Some((a, l)), None) => (a, Some(l)),
                (None, l) => (inside, l),
            };
            (net, ports)
        } else {
            if rest.matches(':').count() > 1 {
                return Err("write an IPv6 address in brackets: [2001:db8::]/64".to_owned());
            }
            let (net, ports) = match rest.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (rest, None),
            };
            (
                net.split_once('/')
                    .map_or((net, None), |(a, l)| (a, Some(l))),
                ports,
            )
        };
        let (addr_text, len_text) = net;
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("`{addr_text}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("`{l}' is not a prefix length (0-{max})"))?,
        };
        let (port_lo, port_hi) = match ports {
            None => (0, u16::MAX),
            Some(p) => {
                let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                let num = |t: &str| {
                    t.parse::<u16>()
                        .map_err(|_| format!("`{t}' is not a port (0-65535)"))
                };
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(format!("port range {lo}-{hi} is empty"));
                }
                (lo, hi)
            }
        };
        Ok(MarkMatch {
            proto,
            addr: mask(addr, prefix_len),
            prefix_len,
            port_lo,
            port_hi,
        })
    }
}

impl fmt::Display for MarkMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Sctp) => "sctp",
            None => "any",
        };
        match self.addr {
            IpAddr::V4(a) => write!(f, "{proto}:{a}")?,
            IpAddr::V6(a) => write!(f, "{proto}:[{a}]")?,
        }
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix_len != max {
            write!(f, "/{}", self.prefix_len)?;
        }
        match (self.port_lo, self.port_hi) {
            (0, u16::MAX) => Ok(()),
            (lo, hi) if lo == hi => write!(f, ":{lo}"),
            (lo, hi) => write!(f, ":{lo}-{hi}"),
        }
    }
}

impl fmt::Display for MarkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.matcher(), self.mark)
    }
}

/// A prefix of the classification trie and the rules that apply within it, in rule order: its
/// own and those of every shorter prefix containing it (so the longest match alone decides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPrefix {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub rules: Vec<MarkRule>,
}

fn contains(outer: &MarkRule, addr: IpAddr, len: u8) -> bool {
    outer.addr.is_ipv4() == addr.is_ipv4()
        && outer.prefix_len <= len
        && mask(addr, outer.prefix_len) == outer.addr
}

/// Compiles `rules` into trie entries, or says why they do not fit the data plane's limits.
pub fn compile(rules: &[MarkRule]) -> Result<Vec<CompiledPrefix>, String> {
    let mut prefixes: Vec<(IpAddr, u8)> = Vec::new();
    for r in rules {
        if !prefixes.contains(&(r.addr, r.prefix_len)) {
            prefixes.push((r.addr, r.prefix_len));
        }
    }
    if prefixes.len() > rvs_common::mark::MAX_PREFIXES as usize {
        return Err(format!(
            "more than {} distinct prefixes in the mark rules",
            rvs_common::mark::MAX_PREFIXES
        ));
    }
    let mut out = Vec::with_capacity(prefixes.len());
    for (addr, prefix_len) in prefixes {
        let applying: Vec<MarkRule> = rules
            .iter()
            .filter(|r| contains(r, addr, prefix_len))
            .copied()
            .collect();
        if applying.len() > rvs_common::mark::MAX_RULES_PER_PREFIX {
            return Err(format!(
                "more than {} mark rules cover {}/{prefix_len}",
                rvs_common::mark::MAX_RULES_PER_PREFIX,
                addr
            ));
        }
        out.push(CompiledPrefix {
            addr,
            prefix_len,
            rules: applying,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str, shown: &str) {
        let m: MarkMatch = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(m.to_string(), shown, "{text}");
        assert_eq!(shown.parse::<MarkMatch>().unwrap(), m);
    }

    #[test]
    fn forms() {
        round_trip("tcp:198.18.0.100", "tcp:198.18.0.100");
        round_trip("TCP:198.18.0.100:80", "tcp:198.18.0.100:80");
        round_trip("udp:198.18.0.7/24:5000-5100", "udp:198.18.0.0/24:5000-5100");
        round_trip("any:[2001:db8::1]/64:53", "any:[2001:db8::]/64:53");
        round_trip("any:[2001:db8::1/64]:53", "any:[2001:db8::]/64:53");
        round_trip("tcp:[2001:db8::100]", "tcp:[2001:db8::100]");
        round_trip("tcp:0.0.0.0/0:0-65535", "tcp:0.0.0.0/0");
    }

    #[test]
    fn errors() {
        for (text, msg) in [
            ("198.18.0.1", "expected PROTO"),
            ("icmp:198.18.0.1", "unknown protocol"),
            ("tcp:198.18.0", "is not an IP address"),
            ("tcp:198.18.0.1/33", "is not a prefix length"),
            ("tcp:198.18.0.1:90-80", "is empty"),
            ("tcp:198.18.0.1:http", "is not a port"),
            ("tcp:2001:db8::1", "brackets"),
            ("tcp:[2001:db8::1", "missing `]'"),
        ] {
            let e = text.parse::<MarkMatch>().unwrap_err();
            assert!(e.contains(msg), "{text}: {e}");
        }
    }

    #[test]
    fn compiled_prefixes_carry_the_rules_of_wider_ones_in_order() {
        let r = |m: u32, t: &str| t.parse::<MarkMatch>().unwrap().with_mark(m);
        let rules = [
            r(1, "tcp:198.18.0.0/16:443"),
            r(2, "tcp:198.18.0.100:80"),
            r(3, "any:198.18.0.0/24"),
            r(4, "any:[2001:db8::]/32"),
        ];
        let c = compile(&rules).unwrap();
        let find = |t: &str| {
            let m: MarkMatch = t.parse().unwrap();
            c.iter()
                .find(|p| p.addr == m.addr && p.prefix_len == m.prefix_len)
                .unwrap()
                .rules
                .iter()
                .map(|r| r.mark)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("tcp:198.18.0.0/16"), [1]);
        assert_eq!(find("tcp:198.18.0.100"), [1, 2, 3]);
        assert_eq!(find("tcp:198.18.0.0/24"), [1, 3]);
        assert_eq!(find("tcp:[2001:db8::]/32"), [4]);
        let many: Vec<MarkRule> = (1..=17)
            .map(|p| r(p, &format!("tcp:198.18.0.1:{p}")))
            .collect();
        assert!(compile(&many).unwrap_err().contains("more than 16"));
    }
}
