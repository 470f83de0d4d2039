//! fo (ip_vs_fo.c), weighted failover: the usable server with the highest weight; ties go to the
//! first in list order (strict `>`).

use super::candidate::Candidate;

pub fn pick(list: &[Candidate]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in list.iter().enumerate() {
        if !d.overloaded && d.weight > best.map_or(0, |(_, w)| w) {
            best = Some((i, d.weight));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(weight: i32, overloaded: bool) -> Candidate {
        Candidate {
            weight,
            active: 0,
            inactive: 0,
            overloaded,
        }
    }

    #[test]
    fn highest_weight_first_on_ties() {
        assert_eq!(pick(&[c(1, false), c(5, false), c(5, false)]), Some(1));
        assert_eq!(pick(&[c(5, true), c(3, false)]), Some(1));
        assert_eq!(pick(&[c(0, false)]), None);
    }
}
