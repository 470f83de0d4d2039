//! ovf (ip_vs_ovf.c), weighted overflow: the highest-weight server whose active connections do not
//! exceed its weight; ties go to the first. Weight 0 and overloaded servers are skipped.

use super::candidate::Candidate;

pub fn pick(list: &[Candidate]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in list.iter().enumerate() {
        if d.overloaded || d.weight == 0 || d.active as i64 > d.weight as i64 {
            continue;
        }
        if best.is_none_or(|(_, w)| d.weight > w) {
            best = Some((i, d.weight));
        }
    }
    best.map(|(i, _)| i)
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
    fn overflows_to_the_next_weight() {
        assert_eq!(pick(&[c(2, 0), c(5, 0)]), Some(1));
        assert_eq!(pick(&[c(2, 0), c(5, 5)]), Some(1));
        assert_eq!(pick(&[c(2, 0), c(5, 6)]), Some(0));
        assert_eq!(pick(&[c(2, 3), c(5, 6)]), None);
    }
}
