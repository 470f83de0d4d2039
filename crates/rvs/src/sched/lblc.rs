//! lblc (ip_vs_lblc.c), locality-based least connection: a destination address keeps its server
//! while that server is listed, has weight and is not "overloaded" — more active connections than
//! its weight while some server of the cluster has fewer than half its weight. Otherwise wlc
//! picks and the cache learns the new server.

use std::collections::HashMap;

use super::{candidate::Candidate, wlc};

/// lblc's overload rule for candidate `i` of `list`.
pub fn overloaded(list: &[Candidate], i: usize) -> bool {
    list[i].active as i64 > list[i].weight as i64
        && list
            .iter()
            .any(|m| (m.active as i32).wrapping_mul(2) < m.weight)
}

/// The cache, by destination address (any key type), of list positions.
#[derive(Debug, Default)]
pub struct Cache<K> {
    pub entries: HashMap<K, usize>,
}

impl<K: std::hash::Hash + Eq + Clone> Cache<K> {
    /// The pick for a flow to `daddr`; `available(i)` says whether list position `i` is listed.
    pub fn pick(&mut self, daddr: &K, list: &[Candidate]) -> Option<usize> {
        if let Some(&i) = self.entries.get(daddr)
            && i < list.len()
            && list[i].weight > 0
            && !overloaded(list, i)
        {
            return Some(i);
        }
        let i = wlc::pick(list)?;
        self.entries.insert(daddr.clone(), i);
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
    fn sticks_until_overloaded_while_others_have_room() {
        let mut cache = Cache::default();
        let mut list = vec![c(2, 0), c(2, 0)];
        assert_eq!(cache.pick(&"a", &list), Some(0));
        list[0].active = 2;
        // At its weight, not above: still cached.
        assert_eq!(cache.pick(&"a", &list), Some(0));
        list[0].active = 3;
        // Above its weight, and server 1 is below half of its weight: move.
        assert_eq!(cache.pick(&"a", &list), Some(1));
        assert_eq!(cache.pick(&"a", &list), Some(1));
        // Everyone busy: no server has room, so the cached one stays even above its weight.
        let busy = vec![c(2, 3), c(2, 3)];
        let mut cache = Cache::default();
        cache.entries.insert("b", 0);
        assert_eq!(cache.pick(&"b", &busy), Some(0));
    }
}
