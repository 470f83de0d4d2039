//! lblcr (ip_vs_lblcr.c), lblc with replication: a destination address keeps a set of servers
//! (newest first). The least loaded usable member serves; when it is overloaded in lblc's sense,
//! wlc picks a server that joins the set. A set unchanged for `lblcr_expiration` drops its most
//! loaded member.

use std::collections::HashMap;

use super::{candidate::Candidate, lblc::overloaded, wlc};

/// One cached set: list positions, newest first, and when it last changed.
#[derive(Clone, Debug, Default)]
pub struct Set {
    pub members: Vec<usize>,
    pub lastmod: u64,
}

impl Set {
    /// ip_vs_dest_set_min: the usable member with the least overhead per weight.
    pub fn min(&self, list: &[Candidate]) -> Option<usize> {
        let mut least: Option<usize> = None;
        for &i in &self.members {
            let d = &list[i];
            match least {
                None if !d.overloaded && d.weight > 0 => least = Some(i),
                Some(l)
                    if !d.overloaded
                        && list[l].overhead() as i64 * d.weight as i64
                            > d.overhead() as i64 * list[l].weight as i64 =>
                {
                    least = Some(i)
                }
                _ => {}
            }
        }
        least
    }

    /// ip_vs_dest_set_max: the member with the most overhead per weight.
    pub fn max(&self, list: &[Candidate]) -> Option<usize> {
        let mut most: Option<usize> = None;
        for &i in &self.members {
            let d = &list[i];
            match most {
                None if d.weight > 0 => most = Some(i),
                Some(m)
                    if d.weight > 0
                        && (list[m].overhead() as i64) * (d.weight as i64)
                            < d.overhead() as i64 * list[m].weight as i64 =>
                {
                    most = Some(i)
                }
                _ => {}
            }
        }
        most
    }
}

#[derive(Debug, Default)]
pub struct Cache<K> {
    pub sets: HashMap<K, Set>,
    /// lblcr_expiration, in the same unit as `now`.
    pub expiration: u64,
}

impl<K: std::hash::Hash + Eq + Clone> Cache<K> {
    pub fn pick(&mut self, daddr: &K, list: &[Candidate], now: u64) -> Option<usize> {
        if let Some(set) = self.sets.get_mut(daddr) {
            let chosen = set.min(list);
            if set.members.len() > 1
                && now > set.lastmod + self.expiration
                && let Some(m) = set.max(list)
            {
                set.members.retain(|&x| x != m);
                set.lastmod = now;
            }
            if let Some(i) = chosen
                && !overloaded(list, i)
            {
                return Some(i);
            }
            let i = wlc::pick(list)?;
            if !set.members.contains(&i) {
                set.members.insert(0, i);
                set.lastmod = now;
            }
            return Some(i);
        }
        let i = wlc::pick(list)?;
        self.sets.insert(
            daddr.clone(),
            Set {
                members: vec![i],
                lastmod: now,
            },
        );
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: i32, active: u32) -> Candidate {
        Candidate {
            weight,
            active,
            inactive: 0,
            overloaded: false,
        }
    }

    #[test]
    fn grows_when_overloaded_and_sheds_when_stale() {
        let mut cache = Cache {
            expiration: 100,
            ..Cache::default()
        };
        let mut list = vec![c(1, 0), c(4, 0)];
        assert_eq!(cache.pick(&"a", &list, 0), Some(0));
        list[0].active = 2;
        // Above its weight while server 1 has room: wlc adds server 1 to the set.
        assert_eq!(cache.pick(&"a", &list, 1), Some(1));
        assert_eq!(cache.sets["a"].members, vec![1, 0]);
        // Long unchanged: the most loaded member (0) is shed.
        assert_eq!(cache.pick(&"a", &list, 500), Some(1));
        assert_eq!(cache.sets["a"].members, vec![1]);
    }
}
