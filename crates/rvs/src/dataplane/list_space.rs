//! Space in the SCHED_LIST array for the services' real-server lists. A changed list is written
//! to a fresh range and the service entry switched to it in one update; the old range is reused
//! only after a grace period, so a packet still walking it never reads another service's list.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// How long a retired range waits before it is reused. A packet reads a list within one run of
/// the XDP program (microseconds, under RCU); 50 ms is thousands of times that, and short enough
/// that adding many real servers in a row does not run the array out of room.
const GRACE: Duration = Duration::from_millis(50);

pub struct ListSpace {
    size: u32,
    /// Ranges in use: offset -> length.
    used: BTreeMap<u32, u32>,
    retired: Vec<(u32, u32, Instant)>,
}

impl ListSpace {
    pub fn new(size: u32) -> ListSpace {
        ListSpace {
            size,
            used: BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// Marks a range as used (rebuilding the allocation from the maps after a restart).
    pub fn reserve(&mut self, off: u32, len: u32) {
        if len > 0 {
            self.used.insert(off, len);
        }
    }

    /// A free range of `len` entries (first fit), or None when the array is full.
    pub fn alloc(&mut self, len: u32) -> Option<u32> {
        if len == 0 {
            return Some(0);
        }
        let now = Instant::now();
        self.retired.retain(|(off, _, at)| {
            let keep = now.duration_since(*at) < GRACE;
            if !keep {
                self.used.remove(off);
            }
            keep
        });
        let mut next = 0u32;
        for (&off, &l) in &self.used {
            if off - next >= len {
                break;
            }
            next = off + l;
        }
        if self.size - next.min(self.size) < len {
            return None;
        }
        self.used.insert(next, len);
        Some(next)
    }

    /// As `alloc`, but when ranges retired moments ago are what stands in the way, waits for
    /// them to come free (the grace period at most) rather than refuse.
    pub fn alloc_waiting(&mut self, len: u32) -> Option<u32> {
        loop {
            if let Some(off) = self.alloc(len) {
                return Some(off);
            }
            std::thread::sleep(self.next_release()?);
        }
    }

    /// How long until the first retired range can be reused (None: nothing is waiting).
    fn next_release(&self) -> Option<Duration> {
        let now = Instant::now();
        self.retired
            .iter()
            .map(|(_, _, at)| (*at + GRACE).saturating_duration_since(now))
            .min()
    }

    /// Returns a range no packet has seen at once.
    pub fn release(&mut self, off: u32, len: u32) {
        if len > 0 {
            self.used.remove(&off);
        }
    }

    /// Returns a range once the grace period has passed.
    pub fn retire(&mut self, off: u32, len: u32) {
        if len > 0 && self.used.contains_key(&off) {
            self.retired.push((off, len, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_and_grace() {
        let mut s = ListSpace::new(10);
        assert_eq!(s.alloc(4), Some(0));
        assert_eq!(s.alloc(4), Some(4));
        assert_eq!(s.alloc(4), None);
        s.retire(0, 4);
        // Still in its grace period.
        assert_eq!(s.alloc(2), Some(8));
        assert_eq!(s.alloc(0), Some(0));
        s.retired[0].2 -= GRACE;
        assert_eq!(s.alloc(3), Some(0));
        assert_eq!(s.next_release(), None);
    }

    #[test]
    fn released_ranges_are_free_at_once_and_retired_ones_say_when() {
        let mut s = ListSpace::new(8);
        assert_eq!(s.alloc(8), Some(0));
        s.release(0, 8);
        assert_eq!(s.alloc(4), Some(0));
        s.retire(0, 4);
        let wait = s.next_release().unwrap();
        assert!(wait > Duration::ZERO && wait <= GRACE);
        assert_eq!(s.alloc(6), None);
        assert_eq!(s.alloc_waiting(6), Some(0));
        assert_eq!(s.alloc_waiting(4), None, "nothing retired to wait for");
    }
}
