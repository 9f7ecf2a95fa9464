//! Plant output over time, from weather records, with linear interpolation between them.

use verdant_core::energy::{Plant, WeatherRecord, fleet_power_series_kw};

use super::build::PlantKw;

/// Plant output at the instants of a weather series, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PowerTimeline {
    samples: Vec<(i64, PlantKw)>,
}

impl PowerTimeline {
    /// The plant's output at each record. A part without inputs at a record counts as
    /// 0 kW there; [`crate::energy::forecast::open_meteo`] rejects forecasts that lack what
    /// the plant needs within the horizon, so this only affects hours outside it.
    pub fn from_weather(plant: &Plant, records: &[WeatherRecord]) -> Self {
        let outputs = fleet_power_series_kw([(plant, records)])
            .pop()
            .unwrap_or_default();
        let samples = records
            .iter()
            .zip(outputs)
            .map(|(record, output)| (record.time_s, PlantKw::new(output.solar_kw, output.wind_kw)))
            .collect();
        Self::new(samples)
    }

    /// A timeline from `(time, kW)` samples in any order; a repeated time keeps the last.
    pub fn new(mut samples: Vec<(i64, PlantKw)>) -> Self {
        samples.sort_by_key(|(t, _)| *t);
        samples.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        Self { samples }
    }

    /// The output at `time_s`, linearly interpolated; `None` outside the samples.
    pub fn at(&self, time_s: i64) -> Option<PlantKw> {
        let after = self.samples.partition_point(|(t, _)| *t < time_s);
        let (t1, kw1) = *self.samples.get(after)?;
        if t1 == time_s {
            return Some(kw1);
        }
        let (t0, kw0) = *self.samples.get(after.checked_sub(1)?)?;
        let fraction = (time_s - t0) as f64 / (t1 - t0) as f64;
        Some(kw0.lerp(kw1, fraction))
    }

    /// First and last sample times.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.samples.first()?.0, self.samples.last()?.0))
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_and_says_nothing_outside() {
        let timeline = PowerTimeline::new(vec![
            (7200, PlantKw::new(300.0, 0.0)),
            (3600, PlantKw::new(100.0, 50.0)),
        ]);
        assert_eq!(timeline.at(3600), Some(PlantKw::new(100.0, 50.0)));
        assert_eq!(timeline.at(5400), Some(PlantKw::new(200.0, 25.0)));
        assert_eq!(timeline.at(7200), Some(PlantKw::new(300.0, 0.0)));
        assert_eq!(timeline.at(3599), None);
        assert_eq!(timeline.at(7201), None);
        assert_eq!(timeline.span(), Some((3600, 7200)));
    }
}
