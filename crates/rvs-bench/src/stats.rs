//! Repeated measurements: the median and how far the repetitions spread.

/// The values of one figure over the repetitions.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    values: Vec<f64>,
}

impl Sample {
    pub fn new() -> Sample {
        Sample::default()
    }

    pub fn push(&mut self, v: f64) {
        if v.is_finite() {
            self.values.push(v);
        }
    }

    /// Adds every value of `other`.
    pub fn extend(&mut self, other: &Sample) {
        self.values.extend_from_slice(&other.values);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn median(&self) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    /// The smallest and the largest value.
    pub fn range(&self) -> Option<(f64, f64)> {
        if self.values.is_empty() {
            return None;
        }
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        Some((min, max))
    }

    /// Half the range as a share of the median (0.05 = ±5%), when there are two values or more.
    pub fn spread(&self) -> Option<f64> {
        let m = self.median()?;
        if self.values.len() < 2 || m == 0.0 {
            return None;
        }
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        Some((max - min) / 2.0 / m.abs())
    }
}

impl FromIterator<f64> for Sample {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = Sample::new();
        for v in iter {
            s.push(v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s: Sample = [3.0, 1.0, 2.0].into_iter().collect();
        assert_eq!(s.median(), Some(2.0));
        assert_eq!(s.spread(), Some(0.5));
        let e: Sample = [4.0, 2.0].into_iter().collect();
        assert_eq!(e.median(), Some(3.0));
        assert_eq!(Sample::new().median(), None);
        let one: Sample = [f64::NAN, 5.0].into_iter().collect();
        assert_eq!((one.median(), one.spread()), (Some(5.0), None));
    }
}
