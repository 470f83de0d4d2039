//! twos (ip_vs_twos.c), power of two choices: two servers drawn at random in proportion to their
//! weights; the less loaded (overhead/weight, cross-multiplied) wins, the first draw on ties.
//! The draws are the two random numbers (already reduced modulo the total weight plus one).

use super::candidate::Candidate;

/// The sum the draws are reduced by: total weight of usable servers, plus one.
pub fn draw_range(list: &[Candidate]) -> Option<u32> {
    let total: i32 = list
        .iter()
        .filter(|d| !d.overloaded && d.weight > 0)
        .map(|d| d.weight)
        .sum();
    (total > 0).then_some(total as u32 + 1)
}

pub fn pick(list: &[Candidate], r1: u32, r2: u32) -> Option<usize> {
    let (mut r1, mut r2) = (r1 as i64, r2 as i64);
    let (mut c1, mut c2): (Option<usize>, Option<usize>) = (None, None);
    for (i, d) in list.iter().enumerate() {
        if d.overloaded || d.weight <= 0 {
            continue;
        }
        r1 -= d.weight as i64;
        r2 -= d.weight as i64;
        if r1 <= 0 && c1.is_none() {
            c1 = Some(i);
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some(i);
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    let c1 = c1?;
    if let Some(c2) = c2 {
        let (a, b) = (&list[c1], &list[c2]);
        // Plain int products, as the kernel compares them.
        if b.weight.wrapping_mul(a.overhead() as i32) > a.weight.wrapping_mul(b.overhead() as i32) {
            return Some(c2);
        }
    }
    Some(c1)
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
    fn draws_follow_weights_and_the_lighter_wins() {
        let list = [c(1, 0), c(2, 0), c(1, 0)];
        assert_eq!(draw_range(&list), Some(5));
        // r = 0 or 1 lands on the first (1 - r <= 0), 2..=3 on the second, 4 on the third.
        assert_eq!(pick(&list, 0, 0), Some(0));
        assert_eq!(pick(&list, 2, 3), Some(1));
        assert_eq!(pick(&list, 4, 4), Some(2));
        let loaded = [c(1, 3), c(1, 0)];
        assert_eq!(pick(&loaded, 1, 2), Some(1));
        assert_eq!(pick(&loaded, 2, 1), Some(1));
    }
}
