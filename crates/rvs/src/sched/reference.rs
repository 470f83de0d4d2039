//! Literal models of the kernel's schedulers, walking the real-server list the way
//! net/netfilter/ipvs/ip_vs_{rr,wrr}.c do. They are the oracle the plans are tested against (unit
//! tests here, and end-to-end tests comparing the XDP program's picks over real packets).

use crate::model::DestAddr;

/// A real server as the reference schedulers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefDest {
    pub addr: DestAddr,
    pub weight: i32,
}

/// ip_vs_rr.c: `cursor` is the list position of the last pick (None = list head).
#[derive(Clone, Debug, Default)]
pub struct KernelRr {
    cursor: Option<DestAddr>,
}

impl KernelRr {
    pub fn schedule(&mut self, list: &[RefDest]) -> Option<DestAddr> {
        let start = match self.cursor {
            None => 0,
            Some(c) => list.iter().position(|d| d.addr == c).map_or(0, |p| p + 1),
        };
        // Walk to the end, then (unless we started at the head) from the head up to the cursor.
        let span = if self.cursor.is_none() {
            list.len() - start.min(list.len())
        } else {
            list.len()
        };
        for k in 0..span {
            let d = &list[(start + k) % list.len()];
            if d.weight > 0 {
                self.cursor = Some(d.addr);
                return Some(d.addr);
            }
        }
        None
    }

    /// ip_vs_rr_del_dest, called after `removed` left position `pos` of `list`.
    pub fn del_dest(&mut self, removed: &DestAddr, pos: usize, list: &[RefDest]) {
        if self.cursor == Some(*removed) {
            self.cursor = if pos == 0 {
                None
            } else {
                Some(list[pos - 1].addr)
            };
        }
    }
}

/// ip_vs_wrr.c, including its last-pass guard.
#[derive(Clone, Debug, Default)]
pub struct KernelWrr {
    cl: Option<DestAddr>,
    cw: i32,
    mw: i32,
    di: i32,
}

fn gcd(a: i32, b: i32) -> i32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl KernelWrr {
    pub fn init(list: &[RefDest]) -> KernelWrr {
        let mut k = KernelWrr::default();
        k.di = Self::gcd_weight(list);
        k.mw = Self::max_weight(list) - (k.di - 1);
        k.cw = k.mw;
        k
    }

    fn gcd_weight(list: &[RefDest]) -> i32 {
        let mut g = 0;
        for d in list.iter().filter(|d| d.weight > 0) {
            g = if g > 0 { gcd(d.weight, g) } else { d.weight };
        }
        if g > 0 { g } else { 1 }
    }

    fn max_weight(list: &[RefDest]) -> i32 {
        list.iter().map(|d| d.weight).fold(0, i32::max)
    }

    /// ip_vs_wrr_dest_changed: after any add, edit or delete.
    pub fn dest_changed(&mut self, list: &[RefDest]) {
        self.cl = None;
        self.di = Self::gcd_weight(list);
        self.mw = Self::max_weight(list) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    pub fn schedule(&mut self, list: &[RefDest]) -> Option<DestAddr> {
        if self.mw == 0 || list.is_empty() {
            return None;
        }
        // Positions: None is the head; Some(i) is list[i].
        let pos_of = |a: Option<DestAddr>| a.and_then(|a| list.iter().position(|d| d.addr == a));
        let mut cur = pos_of(self.cl);
        let last = cur;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = cur.map_or(0, |p| p + 1);
            for (i, d) in list.iter().enumerate().skip(from) {
                if d.weight >= self.cw {
                    self.cl = Some(d.addr);
                    return Some(d.addr);
                }
                if stop == Some(i) {
                    self.cl = Some(d.addr);
                    return None;
                }
            }
            cur = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    pub fn list(weights: &[i32]) -> Vec<RefDest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RefDest {
                addr: DestAddr {
                    addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i as u8)),
                    port: 80,
                },
                weight: w,
            })
            .collect()
    }

    fn letters(list: &[RefDest], picks: &[Option<DestAddr>]) -> String {
        picks
            .iter()
            .map(|p| match p {
                None => '-',
                Some(a) => (b'A' + list.iter().position(|d| d.addr == *a).unwrap() as u8) as char,
            })
            .collect()
    }

    fn wrr_sequence(weights: &[i32], n: usize) -> String {
        let l = list(weights);
        let mut k = KernelWrr::init(&l);
        let picks: Vec<_> = (0..n).map(|_| k.schedule(&l)).collect();
        letters(&l, &picks)
    }

    #[test]
    fn wrr_sequences_from_the_reference() {
        assert_eq!(wrr_sequence(&[4, 3, 2], 9), "AABABCABC");
        assert_eq!(wrr_sequence(&[4, 2, 2], 4), "AABC");
        assert_eq!(wrr_sequence(&[5, 1, 1], 7), "AAAAABC");
        assert_eq!(wrr_sequence(&[0, 2, 1], 3), "BBC");
        assert_eq!(wrr_sequence(&[1, 1, 1], 3), "ABC");
        assert_eq!(wrr_sequence(&[0, 0], 2), "--");
    }

    #[test]
    fn rr_skips_quiescent_and_wraps() {
        let l = list(&[1, 0, 1]);
        let mut k = KernelRr::default();
        let picks: Vec<_> = (0..4).map(|_| k.schedule(&l)).collect();
        assert_eq!(letters(&l, &picks), "ACAC");
        let none = list(&[0, 0]);
        assert_eq!(KernelRr::default().schedule(&none), None);
    }
}
