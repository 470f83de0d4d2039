//! nq (ip_vs_nq.c), never queue: the first server (in list order) with no active connection;
//! otherwise sed's rule. Weight 0 and overloaded servers are skipped.

use super::{candidate::Candidate, sed};

pub fn pick(list: &[Candidate]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in list.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        let doh = sed::cost(d);
        if d.active == 0 {
            return Some(i);
        }
        let better = match least {
            None => true,
            Some((l, loh)) => loh * d.weight as i64 > doh * list[l].weight as i64,
        };
        if better {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
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
    fn idle_first_else_expected_delay() {
        assert_eq!(pick(&[c(9, 1, 0), c(1, 0, 50)]), Some(1));
        assert_eq!(pick(&[c(1, 2, 0), c(3, 2, 0)]), Some(1));
        assert_eq!(pick(&[c(0, 0, 0), c(1, 1, 0)]), Some(1));
    }
}
