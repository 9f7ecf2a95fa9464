//! From what the providers delivered to the site's 48 points, one per step: an hour, or
//! an hour divided by `--time-scale` when the operator's clock is sped up (`make demo`:
//! 30 s). Pure.
//!
//! - The first point starts at the current step (the UTC hour) and holds the output
//!   **now** (the placement engine reads it as the current supply): measured when a fresh
//!   Prometheus value exists, modelled otherwise.
//! - Every later point is the mean output over its step (`samples_per_step` evenly spaced
//!   instants), so the step function carries the right energy.
//! - Weather no older than `max_age_s` is used as is, however old within that bound (the
//!   forecast "ages"). Beyond it, each instant gets the smaller of what the stale weather
//!   says and a persistence estimate: the output at the last good fetch, decaying
//!   exponentially (time constant `decay_s`, [`DECAY_TIME_S`] unscaled) from the moment
//!   the bound passed,
//!   with the solar part zero while the sun is down. Never more than the stale forecast,
//!   and toward zero the longer the outage lasts.
//! - A Prometheus measurement without weather is held and decays the same way from the
//!   time it was taken.
//! - Instants the weather does not cover count as 0 kW and are counted in
//!   `uncovered_hours`, so the caller can say so.

use super::HORIZON_HOURS;

/// Time constant of the persistence decay on the wall clock, seconds (divided by
/// `--time-scale`).
pub const DECAY_TIME_S: f64 = 6.0 * 3600.0;

/// Renewable output split by source, kW. Never negative, never NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlantKw {
    /// Solar output, kW.
    pub solar_kw: f64,
    /// Wind output, kW.
    pub wind_kw: f64,
}

impl PlantKw {
    /// Output with non-finite and negative parts set to 0.
    pub fn new(solar_kw: f64, wind_kw: f64) -> Self {
        let clean = |kw: f64| if kw.is_finite() && kw > 0.0 { kw } else { 0.0 };
        Self {
            solar_kw: clean(solar_kw),
            wind_kw: clean(wind_kw),
        }
    }

    /// solar + wind.
    pub fn total_kw(&self) -> f64 {
        self.solar_kw + self.wind_kw
    }

    /// Both parts times `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self::new(self.solar_kw * factor, self.wind_kw * factor)
    }

    /// The part-wise minimum.
    pub fn min(&self, other: Self) -> Self {
        Self::new(
            self.solar_kw.min(other.solar_kw),
            self.wind_kw.min(other.wind_kw),
        )
    }

    /// Linear interpolation toward `other`; `fraction` 0 is `self`.
    pub fn lerp(&self, other: Self, fraction: f64) -> Self {
        Self::new(
            self.solar_kw + (other.solar_kw - self.solar_kw) * fraction,
            self.wind_kw + (other.wind_kw - self.wind_kw) * fraction,
        )
    }

    /// A measured or configured total split between solar and wind: like `model` when it
    /// has output, else by `solar_share`.
    pub fn split(total_kw: f64, model: Option<PlantKw>, solar_share: f64) -> Self {
        let share = match model {
            Some(m) if m.total_kw() > 0.0 => m.solar_kw / m.total_kw(),
            _ => solar_share.clamp(0.0, 1.0),
        };
        Self::new(total_kw * share, total_kw * (1.0 - share))
    }
}

/// Output at an instant, `None` where the source says nothing.
pub type KwAt<'a> = Box<dyn Fn(i64) -> Option<PlantKw> + 'a>;

/// One hour of the forecast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HourKw {
    /// Start of the hour (the first point: the current hour, holding "now").
    pub start_s: i64,
    /// Output.
    pub kw: PlantKw,
}

/// Where the numbers came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForecastBasis {
    /// Weather within the age bound.
    Weather {
        /// Seconds since it was fetched.
        age_s: i64,
    },
    /// Weather older than the bound: conservative persistence.
    Persistence {
        /// Seconds since the last good fetch.
        age_s: i64,
    },
    /// A measurement without weather, held and decaying.
    MeasuredPersistence,
    /// A Static spec.
    Static,
    /// Nothing usable: 0 kW throughout.
    Nothing,
}

/// A measured site output (the Prometheus provider's reading).
pub use verdant_core::energy::forecast::Measured;

/// The last good weather, as kW over time.
pub struct Weather<'a> {
    /// Modelled output at an instant; `None` where the weather says nothing.
    pub kw_at: &'a dyn Fn(i64) -> Option<PlantKw>,
    /// When it was fetched (Unix s).
    pub fetched_s: i64,
    /// Instants averaged per point.
    pub samples_per_step: u32,
}

/// Everything [`build`] needs.
pub struct Inputs<'a> {
    /// Now (Unix s).
    pub now_s: i64,
    /// The last good weather, if any.
    pub weather: Option<Weather<'a>>,
    /// A measurement to use for now (already checked to be current).
    pub measured: Option<Measured>,
    /// Weather older than this is replaced by persistence.
    pub max_age_s: i64,
    /// Seconds between points: 3600, or less on a sped-up clock.
    pub step_s: i64,
    /// Time constant of the persistence decay, seconds.
    pub decay_s: f64,
    /// Share of a measured total that is solar when the model cannot tell.
    pub solar_share: f64,
    /// Whether the sun is up at the site at an instant.
    pub sun_up: &'a dyn Fn(i64) -> bool,
}

/// The site's forecast.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltForecast {
    /// Output now.
    pub now: PlantKw,
    /// 48 points, one per step, from the current step.
    pub hours: Vec<HourKw>,
    /// Where the numbers came from.
    pub basis: ForecastBasis,
    /// Whether `now` is a measurement.
    pub measured_now: bool,
    /// Hours with at least one instant the weather did not cover (counted as 0 kW).
    pub uncovered_hours: usize,
}

/// Start of the UTC hour holding `time_s`.
pub fn hour_start(time_s: i64) -> i64 {
    step_start(time_s, 3600)
}

/// Start of the step of `step_s` seconds holding `time_s` (steps start at the epoch).
pub fn step_start(time_s: i64, step_s: i64) -> i64 {
    let step_s = step_s.max(1);
    time_s.div_euclid(step_s) * step_s
}

/// Builds the forecast.
pub fn build(inputs: &Inputs<'_>) -> BuiltForecast {
    let now_s = inputs.now_s;
    let persistence = |kw0: PlantKw, from_s: i64, t: i64| -> PlantKw {
        let elapsed_s = (t - from_s).max(0) as f64;
        let mut kw = kw0.scaled((-elapsed_s / inputs.decay_s.max(1.0)).exp());
        if !(inputs.sun_up)(t) {
            kw.solar_kw = 0.0;
        }
        kw
    };
    let (basis, samples_per_step, model): (ForecastBasis, u32, KwAt<'_>) =
        match (&inputs.weather, inputs.measured) {
            (Some(weather), _) => {
                let age_s = (now_s - weather.fetched_s).max(0);
                let kw_at = weather.kw_at;
                if age_s <= inputs.max_age_s {
                    (
                        ForecastBasis::Weather { age_s },
                        weather.samples_per_step,
                        Box::new(kw_at),
                    )
                } else {
                    let anchor = kw_at(weather.fetched_s).unwrap_or_default();
                    let bound_passed_s = weather.fetched_s + inputs.max_age_s;
                    (
                        ForecastBasis::Persistence { age_s },
                        weather.samples_per_step,
                        Box::new(move |t| {
                            let conservative = persistence(anchor, bound_passed_s, t);
                            Some(kw_at(t).map_or(conservative, |stale| stale.min(conservative)))
                        }),
                    )
                }
            }
            (None, Some(measured)) => {
                let kw0 = PlantKw::split(measured.total_kw, None, inputs.solar_share);
                (
                    ForecastBasis::MeasuredPersistence,
                    4,
                    Box::new(move |t| Some(persistence(kw0, measured.at_s, t))),
                )
            }
            (None, None) => (
                ForecastBasis::Nothing,
                1,
                Box::new(|_| Some(PlantKw::default())),
            ),
        };

    let modelled_now = model(now_s);
    let now = match inputs.measured {
        Some(m) => PlantKw::split(m.total_kw, modelled_now, inputs.solar_share),
        None => modelled_now.unwrap_or_default(),
    };
    let mut uncovered_hours = usize::from(modelled_now.is_none() && inputs.measured.is_none());
    let step_s = inputs.step_s.max(1);
    let first_hour_s = step_start(now_s, step_s);
    let n = samples_per_step.max(1);
    let mut hours = Vec::with_capacity(HORIZON_HOURS);
    hours.push(HourKw {
        start_s: first_hour_s,
        kw: now,
    });
    for k in 1..HORIZON_HOURS as i64 {
        let start_s = first_hour_s + k * step_s;
        let mut sum = PlantKw::default();
        let mut uncovered = false;
        for j in 0..n {
            let t = start_s + ((2 * j + 1) as i64 * step_s) / (2 * n as i64);
            match model(t) {
                Some(kw) => {
                    sum.solar_kw += kw.solar_kw;
                    sum.wind_kw += kw.wind_kw;
                }
                None => uncovered = true,
            }
        }
        uncovered_hours += usize::from(uncovered);
        hours.push(HourKw {
            start_s,
            kw: sum.scaled(1.0 / f64::from(n)),
        });
    }
    BuiltForecast {
        now,
        hours,
        basis,
        measured_now: inputs.measured.is_some(),
        uncovered_hours,
    }
}

/// A Static provider's forecast: its hourly totals split by `solar_share`.
pub fn from_static(hourly_total_kw: &[(i64, f64)], now_s: i64, solar_share: f64) -> BuiltForecast {
    let hours: Vec<HourKw> = hourly_total_kw
        .iter()
        .map(|&(start_s, kw)| HourKw {
            start_s,
            kw: PlantKw::split(kw, None, solar_share),
        })
        .collect();
    BuiltForecast {
        now: hours
            .iter()
            .take_while(|h| h.start_s <= now_s)
            .last()
            .map(|h| h.kw)
            .unwrap_or_default(),
        hours,
        basis: ForecastBasis::Static,
        measured_now: false,
        uncovered_hours: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 494_444 * 3600 + 1800; // half past an hour
    fn always_day(_: i64) -> bool {
        true
    }

    fn ramp(t: i64) -> Option<PlantKw> {
        // 100 kW solar + 1 kW per hour after NOW of wind, for 30 hours.
        let hours = (t - NOW) as f64 / 3600.0;
        (-10.0..=30.0)
            .contains(&hours)
            .then(|| PlantKw::new(100.0, 10.0 + hours))
    }

    fn inputs<'a>(weather: Option<Weather<'a>>, measured: Option<Measured>) -> Inputs<'a> {
        Inputs {
            now_s: NOW,
            weather,
            measured,
            max_age_s: 6 * 3600,
            step_s: 3600,
            decay_s: DECAY_TIME_S,
            solar_share: 0.5,
            sun_up: &always_day,
        }
    }

    #[test]
    fn first_point_is_now_and_later_points_are_hour_means() {
        let weather = Weather {
            kw_at: &ramp,
            fetched_s: NOW - 600,
            samples_per_step: 4,
        };
        let f = build(&inputs(Some(weather), None));
        assert_eq!(f.hours.len(), 48);
        assert_eq!(f.hours[0].start_s, hour_start(NOW));
        assert!(f.hours[0].start_s <= NOW && NOW < f.hours[1].start_s);
        assert_eq!(f.now, PlantKw::new(100.0, 10.0));
        assert_eq!(f.hours[0].kw, f.now);
        // Hour 1 spans NOW+0.5h .. NOW+1.5h: mean wind 10 + 1.0.
        assert!(
            (f.hours[1].kw.wind_kw - 11.0).abs() < 1e-9,
            "{:?}",
            f.hours[1]
        );
        assert_eq!(f.basis, ForecastBasis::Weather { age_s: 600 });
        // The ramp ends 30 h after NOW: hours 31.. are not covered and count as zero.
        assert_eq!(f.uncovered_hours, 48 - 30);
        assert_eq!(f.hours[47].kw.total_kw(), 0.0);
    }

    #[test]
    fn a_measurement_overrides_now_with_the_models_split() {
        let weather = Weather {
            kw_at: &ramp,
            fetched_s: NOW,
            samples_per_step: 4,
        };
        let measured = Measured {
            total_kw: 55.0,
            at_s: NOW - 30,
        };
        let f = build(&inputs(Some(weather), Some(measured)));
        assert!(f.measured_now);
        assert!((f.now.total_kw() - 55.0).abs() < 1e-9);
        assert!(
            (f.now.solar_kw - 50.0).abs() < 1e-9,
            "split like the model (100:10)"
        );
        assert_eq!(f.hours[0].kw, f.now);
        assert!(
            f.hours[1].kw.total_kw() > 100.0,
            "later hours still from weather"
        );
    }

    #[test]
    fn stale_weather_decays_and_never_exceeds_the_stale_forecast() {
        let fetched_s = NOW - 7 * 3600; // an hour past the 6 h bound
        let weather = Weather {
            kw_at: &ramp,
            fetched_s,
            samples_per_step: 4,
        };
        let f = build(&inputs(Some(weather), None));
        assert_eq!(f.basis, ForecastBasis::Persistence { age_s: 7 * 3600 });
        let anchor = ramp(fetched_s).unwrap_or_default().total_kw();
        let mut previous = f64::INFINITY;
        for h in &f.hours {
            let total = h.kw.total_kw();
            assert!(total <= previous + 1e-9, "decays: {total} after {previous}");
            assert!(total <= anchor);
            previous = total;
        }
        assert!(
            f.hours[0].kw.total_kw() < anchor,
            "already decaying an hour past the bound"
        );
        assert!(f.hours[47].kw.total_kw() < 0.01 * anchor, "toward zero");
        assert_eq!(f.uncovered_hours, 0, "persistence covers every hour");
    }

    #[test]
    fn persistence_has_no_sun_at_night() {
        let night = |t: i64| (t - NOW).rem_euclid(86_400) < 12 * 3600;
        let measured = Measured {
            total_kw: 100.0,
            at_s: NOW,
        };
        let f = build(&Inputs {
            sun_up: &night,
            ..inputs(None, Some(measured))
        });
        assert_eq!(f.basis, ForecastBasis::MeasuredPersistence);
        assert_eq!(f.now, PlantKw::new(50.0, 50.0));
        let dark = &f.hours[20];
        assert_eq!(dark.kw.solar_kw, 0.0);
        assert!(dark.kw.wind_kw > 0.0 && dark.kw.wind_kw < 50.0);
    }

    #[test]
    fn a_sped_up_clock_has_short_steps_over_the_same_instants() {
        // 120×: 30 s steps; the wind ramp is 1 kW per hour of wall time.
        let weather = Weather {
            kw_at: &ramp,
            fetched_s: NOW,
            samples_per_step: 4,
        };
        let f = build(&Inputs {
            step_s: 30,
            decay_s: DECAY_TIME_S / 120.0,
            ..inputs(Some(weather), None)
        });
        assert_eq!(f.hours.len(), 48);
        assert_eq!(f.hours[0].start_s, step_start(NOW, 30));
        assert_eq!(f.hours[1].start_s - f.hours[0].start_s, 30);
        assert_eq!(f.hours[47].start_s - f.hours[0].start_s, 47 * 30);
        // Point 2 spans NOW+60 s .. NOW+90 s; its 4 instants are 63, 71, 78 and 86 s in.
        let expected_wind = 10.0 + 74.5 / 3600.0;
        assert!(
            (f.hours[2].kw.wind_kw - expected_wind).abs() < 1e-9,
            "{:?}",
            f.hours[2]
        );
        assert_eq!(f.uncovered_hours, 0);
    }

    #[test]
    fn nothing_is_zero_everywhere() {
        let f = build(&inputs(None, None));
        assert_eq!(f.basis, ForecastBasis::Nothing);
        assert_eq!(f.hours.len(), 48);
        assert!(f.hours.iter().all(|h| h.kw.total_kw() == 0.0));
    }

    #[test]
    fn splits_clean_nonsense() {
        assert_eq!(PlantKw::new(f64::NAN, -3.0), PlantKw::default());
        assert_eq!(
            PlantKw::split(10.0, Some(PlantKw::default()), 1.0),
            PlantKw::new(10.0, 0.0)
        );
    }
}
