//! `--time-scale`: the operator's own time constants, run faster than the wall clock in
//! the demo to match weather replayed faster.

/// How many times faster than the wall clock the operator's time constants run
/// (`--time-scale`; 1 in production).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(f64);

impl TimeScale {
    /// Wall-clock time.
    pub const REAL_TIME: Self = Self(1.0);
    /// The largest scale: an hour in a second, the shortest forecast step there is.
    pub const MAX: f64 = 3600.0;

    /// The scale `factor`; 1 to [`Self::MAX`].
    pub fn new(factor: f64) -> Result<Self, String> {
        if (1.0..=Self::MAX).contains(&factor) {
            Ok(Self(factor))
        } else {
            Err(format!(
                "{factor}: --time-scale must be between 1 (wall clock) and {} (an hour a second)",
                Self::MAX
            ))
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let factor: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: --time-scale must be a number, e.g. 120"))?;
        Self::new(factor)
    }

    /// How many times faster than the wall clock.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// `seconds` of operator time in wall seconds; a positive duration stays at least 1 s.
    pub fn wall_s(self, seconds: i64) -> i64 {
        if seconds <= 0 {
            return seconds;
        }
        ((seconds as f64 / self.0).round() as i64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_scale_divides_durations_and_rejects_nonsense() {
        let demo = TimeScale::parse("120").unwrap();
        assert_eq!(demo.wall_s(600), 5);
        assert_eq!(demo.wall_s(3600), 30);
        assert_eq!(demo.wall_s(60), 1, "a positive duration stays positive");
        assert_eq!(demo.wall_s(0), 0);
        assert_eq!(TimeScale::REAL_TIME.wall_s(600), 600);
        for bad in ["0", "0.5", "-2", "7200", "fast", "NaN"] {
            assert!(
                TimeScale::parse(bad).unwrap_err().contains("--time-scale"),
                "{bad}"
            );
        }
    }
}
