//! wlc (ip_vs_wlc.c), the default scheduler: the server with the least overhead per weight. The
//! first usable server (weight > 0, not overloaded) starts; a later non-overloaded one replaces it
//! when `least_oh * its_weight > its_oh * least_weight` (64-bit, strict: ties keep the earlier).

use super::candidate::Candidate;

pub fn pick(list: &[Candidate]) -> Option<usize> {
    pick_by(list, |d| d.overhead() as i32 as i64)
}

/// The wlc walk with a cost function (sed uses it with `active + 1`).
pub fn pick_by(list: &[Candidate], cost: impl Fn(&Candidate) -> i64) -> Option<usize> {
    let first = list.iter().position(|d| !d.overloaded && d.weight > 0)?;
    let (mut least, mut loh) = (first, cost(&list[first]));
    for (i, d) in list.iter().enumerate().skip(first + 1) {
        if d.overloaded {
            continue;
        }
        let doh = cost(d);
        if loh * d.weight as i64 > doh * list[least].weight as i64 {
            least = i;
            loh = doh;
        }
    }
    Some(least)
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
    fn overhead_per_weight_with_first_on_ties() {
        // 2 active on weight 2 equals 1 active on weight 1: the earlier stays.
        assert_eq!(pick(&[c(2, 2, 0), c(1, 1, 0)]), Some(0));
        assert_eq!(pick(&[c(1, 1, 0), c(2, 2, 0)]), Some(0));
        assert_eq!(pick(&[c(1, 1, 0), c(3, 2, 0)]), Some(1));
        // All idle: the first usable.
        assert_eq!(pick(&[c(0, 0, 0), c(1, 0, 0), c(5, 0, 0)]), Some(1));
        // Weight 0 never wins later on either: 0 * x > y * w is false.
        assert_eq!(pick(&[c(1, 5, 0), c(0, 0, 0)]), Some(0));
        assert_eq!(pick(&[c(0, 0, 0)]), None);
    }
}
