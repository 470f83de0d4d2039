//! lc (ip_vs_lc.c): the server with the least overhead; weight 0 and overloaded servers are
//! skipped; ties go to the first in list order (strict `<`).

use super::candidate::Candidate;

pub fn pick(list: &[Candidate]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in list.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        let oh = d.overhead();
        if best.is_none_or(|(_, b)| oh < b) {
            best = Some((i, oh));
        }
    }
    best.map(|(i, _)| i)
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
    fn least_overhead_first_on_ties() {
        assert_eq!(pick(&[c(1, 1, 0), c(1, 0, 5), c(1, 0, 5)]), Some(1));
        // One active connection outweighs 255 inactive ones.
        assert_eq!(pick(&[c(1, 1, 0), c(1, 0, 255)]), Some(1));
        assert_eq!(pick(&[c(1, 1, 0), c(1, 0, 256)]), Some(0));
        // Weight is ignored except that 0 is quiescent.
        assert_eq!(pick(&[c(0, 0, 0), c(100, 2, 0), c(1, 1, 0)]), Some(2));
        assert_eq!(pick(&[c(0, 0, 0)]), None);
        let mut o = c(1, 0, 0);
        o.overloaded = true;
        assert_eq!(pick(&[o, c(1, 3, 0)]), Some(1));
    }
}
