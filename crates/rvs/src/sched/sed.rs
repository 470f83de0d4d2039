//! sed (ip_vs_sed.c), shortest expected delay: wlc's walk with cost `active + 1` (inactive
//! connections are ignored).

use super::{candidate::Candidate, wlc};

pub fn cost(d: &Candidate) -> i64 {
    (d.active as i32).wrapping_add(1) as i64
}

pub fn pick(list: &[Candidate]) -> Option<usize> {
    wlc::pick_by(list, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: i32, active: u32, inactive: u32) -> Candidate {
        Candidate {
            weight,
            active,
            inactive,
            overloaded: false,
        }
    }

    #[test]
    fn expected_delay() {
        // (0+1)/1 vs (1+1)/3: the second is faster.
        assert_eq!(pick(&[c(1, 0, 0), c(3, 1, 0)]), Some(1));
        // Inactive connections do not count.
        assert_eq!(pick(&[c(1, 0, 100), c(1, 1, 0)]), Some(0));
        // (1+1)/2 == (0+1)/1: the earlier stays.
        assert_eq!(pick(&[c(2, 1, 0), c(1, 0, 0)]), Some(0));
    }
}
