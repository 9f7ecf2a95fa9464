//! The Replay provider: a weather file played back as if it started when the site was
//! created.
//!
//! The file (from a path or a ConfigMap key; NREL TMY3, PVGIS TMY, windpowerlib or
//! generic CSV, detected unless `format` says) is laid out on its own time line: each
//! record sits at its time step after the previous one. Records go in file order, since
//! TMY files stitch months of different years together: a jump back or of more than six
//! hours between records counts as one typical step. The file loops at its end.
//!
//! Wall time `t` plays file position `startOffset + (t − creationTimestamp) × speedup`.
//! The plant is evaluated at each record's *own* time, so the sun stands where it stood
//! for that weather, and the result is interpolated between records. With a speed-up,
//! each forecast point averages proportionally more instants of the file, unless the
//! operator's clock is sped up as much (`--time-scale`), which shortens the points.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use verdant_core::energy::{
    Plant, SunAtTime, WeatherFormat as CoreFormat, WeatherRecord, parse_weather, parse_weather_as,
};
use verdant_crds::ReplayForecast;

use super::ForecastError;
use super::build::PlantKw;

/// Largest weather file read (a year of hourly records is about 2 MB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// A gap between records larger than this (or negative) is a seam, not weather time.
const MAX_STEP_S: i64 = 6 * 3600;

/// A parsed weather file laid out for playback.
#[derive(Debug)]
pub struct ReplayFile {
    records: Vec<WeatherRecord>,
    /// The time-dependent half of the sun's position at each record (most of a PV
    /// evaluation's cost), computed on first use and shared by every site replaying the
    /// file.
    suns: Vec<OnceLock<Option<SunAtTime>>>,
    positions_s: Vec<i64>,
    step_s: i64,
    loop_s: i64,
    /// The format it was read as.
    pub format: CoreFormat,
    /// Where it came from, for messages.
    pub source: String,
}

impl ReplayFile {
    /// Parses `text`; `source` names it in messages.
    pub fn parse(
        text: &str,
        format: Option<CoreFormat>,
        source: &str,
    ) -> Result<Self, ForecastError> {
        let series = match format {
            Some(format) => parse_weather_as(text, format),
            None => parse_weather(text),
        }
        .map_err(|e| ForecastError::Source(format!("weather file {source}: {e}")))?;
        let steps: Vec<i64> = series
            .records
            .windows(2)
            .map(|w| w[1].time_s - w[0].time_s)
            .filter(|s| *s > 0 && *s <= MAX_STEP_S)
            .collect();
        let typical_step_s = median(steps).unwrap_or(3600);
        let mut positions_s = Vec::with_capacity(series.records.len());
        let mut position = 0;
        for (i, record) in series.records.iter().enumerate() {
            if i > 0 {
                let step = record.time_s - series.records[i - 1].time_s;
                position += if step > 0 && step <= MAX_STEP_S {
                    step
                } else {
                    typical_step_s
                };
            }
            positions_s.push(position);
        }
        Ok(Self {
            loop_s: position + typical_step_s,
            step_s: typical_step_s,
            suns: series.records.iter().map(|_| OnceLock::new()).collect(),
            records: series.records,
            positions_s,
            format: series.format,
            source: source.to_owned(),
        })
    }

    /// Fails when the file lacks what the plant needs everywhere (a PV site replaying a
    /// wind-only file would otherwise read as a site in permanent darkness).
    pub fn check_covers(&self, plant: &Plant) -> Result<(), ForecastError> {
        let arrays = plant.arrays().len();
        if arrays > 0
            && !self
                .records
                .iter()
                .any(|r| r.ghi.is_some() || (r.dni.is_some() && r.dhi.is_some()))
        {
            return Err(ForecastError::Source(format!(
                "weather file {}: no irradiance (ghi, or dni and dhi) in any record, but the site has {arrays} PV array(s)",
                self.source
            )));
        }
        let groups = plant.turbine_groups().len();
        if groups > 0 && self.records.iter().all(|r| r.wind_speeds.is_empty()) {
            return Err(ForecastError::Source(format!(
                "weather file {}: no wind speed in any record, but the site has {groups} turbine group(s)",
                self.source
            )));
        }
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file has no records (never: parsing requires one).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Length of one pass through the file, seconds of weather time.
    pub fn loop_s(&self) -> i64 {
        self.loop_s
    }
}

fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Which file position plays at which wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayClock {
    /// Wall time at which file position `start_offset_s` plays (the site's creation).
    pub anchor_s: i64,
    /// File position played at the anchor, seconds after the first record.
    pub start_offset_s: f64,
    /// Seconds of weather per second of wall time.
    pub speedup: f64,
}

impl ReplayClock {
    /// The clock of a site's replay settings.
    pub fn new(spec: &ReplayForecast, anchor_s: i64) -> Self {
        Self {
            anchor_s,
            start_offset_s: spec
                .start_offset
                .map_or(0.0, |d| std::time::Duration::from(d).as_secs_f64()),
            speedup: if spec.speedup.is_finite() && spec.speedup > 0.0 {
                spec.speedup
            } else {
                1.0
            },
        }
    }

    fn position_s(&self, wall_s: i64) -> f64 {
        self.start_offset_s + (wall_s - self.anchor_s) as f64 * self.speedup
    }
}

/// A file, a clock and a plant: kW at any wall time.
pub struct Playback<'a> {
    file: &'a ReplayFile,
    clock: ReplayClock,
    plant: &'a Plant,
    outputs: RefCell<HashMap<usize, PlantKw>>,
}

impl<'a> Playback<'a> {
    /// Plays `file` on `clock` through `plant`.
    pub fn new(file: &'a ReplayFile, clock: ReplayClock, plant: &'a Plant) -> Self {
        Self {
            file,
            clock,
            plant,
            outputs: RefCell::default(),
        }
    }

    /// Instants to average per forecast point of `step_s` wall seconds: enough to see
    /// every record the step plays.
    pub fn samples_per_step(&self, step_s: i64) -> u32 {
        let records_per_step =
            step_s.max(1) as f64 * self.clock.speedup / self.file.step_s.max(1) as f64;
        (4.0 * records_per_step.ceil()).clamp(4.0, 240.0) as u32
    }

    /// The plant's output at wall time `wall_s`. Parts without inputs in a record
    /// count as 0 kW there.
    pub fn kw_at(&self, wall_s: i64) -> Option<PlantKw> {
        let file = self.file;
        if file.records.is_empty() || file.loop_s <= 0 {
            return None;
        }
        let position = self.clock.position_s(wall_s).rem_euclid(file.loop_s as f64);
        let index = file
            .positions_s
            .partition_point(|p| (*p as f64) <= position)
            .saturating_sub(1);
        let (next, next_position) = match file.positions_s.get(index + 1) {
            Some(p) => (index + 1, *p as f64),
            None => (0, file.loop_s as f64),
        };
        let here = file.positions_s[index] as f64;
        let fraction = if next_position > here {
            (position - here) / (next_position - here)
        } else {
            0.0
        };
        Some(self.output(index).lerp(self.output(next), fraction))
    }

    fn output(&self, index: usize) -> PlantKw {
        *self.outputs.borrow_mut().entry(index).or_insert_with(|| {
            let record = &self.file.records[index];
            let sun = self.file.suns[index].get_or_init(|| SunAtTime::new(record.time_s));
            let out = match sun {
                Some(sun) => self.plant.power_kw_with_sun(record, Some(sun)),
                None => self.plant.power_kw(record),
            };
            PlantKw::new(out.solar_kw, out.wind_kw)
        })
    }
}

/// Reads the file's text from its path or ConfigMap. A relative path is resolved
/// against `weather_dir`. Returns the text and a name for messages.
pub async fn read_source(
    spec: &ReplayForecast,
    client: Option<&kube::Client>,
    weather_dir: &Path,
) -> Result<(String, String), ForecastError> {
    if let Some(path) = &spec.path {
        let full = weather_dir.join(path);
        let name = full.display().to_string();
        let metadata = tokio::fs::metadata(&full).await.map_err(|e| {
            ForecastError::Source(format!(
                "weather file {name}: {e} (a relative spec.forecast.replay.path is resolved against --weather-dir)"
            ))
        })?;
        if metadata.len() > MAX_FILE_BYTES {
            return Err(ForecastError::Source(format!(
                "weather file {name}: {} bytes is more than the {MAX_FILE_BYTES} read",
                metadata.len()
            )));
        }
        let bytes = tokio::fs::read(&full)
            .await
            .map_err(|e| ForecastError::Source(format!("weather file {name}: {e}")))?;
        return Ok((String::from_utf8_lossy(&bytes).into_owned(), name));
    }
    let Some(reference) = &spec.config_map_ref else {
        return Err(ForecastError::Config(
            "spec.forecast.replay needs a path or a configMapRef".to_owned(),
        ));
    };
    let name = format!(
        "ConfigMap {}/{} key {}",
        reference.namespace, reference.name, reference.key
    );
    let Some(client) = client else {
        return Err(ForecastError::Source(format!(
            "{name}: no cluster connection to read it from"
        )));
    };
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &reference.namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|e| ForecastError::Source(format!("reading {name}: {e}")))?
        .ok_or_else(|| ForecastError::Source(format!("{name}: the ConfigMap does not exist")))?;
    if let Some(text) = config_map.data.as_ref().and_then(|d| d.get(&reference.key)) {
        return Ok((text.clone(), name));
    }
    if let Some(bytes) = config_map
        .binary_data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
    {
        return Ok((String::from_utf8_lossy(&bytes.0).into_owned(), name));
    }
    let keys: Vec<&String> = config_map
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(config_map.binary_data.iter().flat_map(|d| d.keys()))
        .collect();
    Err(ForecastError::Source(format!(
        "{name}: no such key (the ConfigMap has: {})",
        if keys.is_empty() {
            "no keys".to_owned()
        } else {
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use verdant_core::energy::{Location, PvArray, Turbine, TurbineGroup};

    use super::*;

    fn csv(rows: &[(&str, f64, f64)]) -> String {
        let mut text = "time,ghi,wind_speed\n".to_owned();
        for (time, ghi, wind) in rows {
            text.push_str(&format!("{time},{ghi},{wind}\n"));
        }
        text
    }

    fn plant() -> Plant {
        Plant::new(
            Location::new(36.1, -79.95, 273.0),
            vec![PvArray::new(1000.0, 25.0, 180.0)],
            vec![TurbineGroup::new(
                Turbine::from_library("E-82/2350").unwrap(),
                1,
                108.0,
            )],
        )
        .unwrap()
    }

    #[test]
    fn seams_count_as_one_step_and_the_file_loops() {
        let text = csv(&[
            ("1988-01-31T22:00:00Z", 0.0, 5.0),
            ("1988-01-31T23:00:00Z", 0.0, 6.0),
            ("1991-02-01T00:00:00Z", 0.0, 7.0), // a TMY month seam
            ("1991-02-01T01:00:00Z", 0.0, 8.0),
        ]);
        let file = ReplayFile::parse(&text, None, "test.csv").unwrap();
        assert_eq!(file.positions_s, vec![0, 3600, 7200, 10800]);
        assert_eq!(file.loop_s(), 14_400);
        let plant = plant();
        let clock = ReplayClock {
            anchor_s: 1_000_000,
            start_offset_s: 0.0,
            speedup: 1.0,
        };
        let playback = Playback::new(&file, clock, &plant);
        let wind = |t: i64| playback.kw_at(t).unwrap().wind_kw;
        assert!(wind(1_000_000 + 7200) > wind(1_000_000));
        assert_eq!(wind(1_000_000), wind(1_000_000 + 14_400), "loops");
        let between = wind(1_000_000 + 1800);
        assert!(between > wind(1_000_000) && between < wind(1_000_000 + 3600));
    }

    #[test]
    fn speedup_and_offset_move_through_the_file() {
        let rows: Vec<(String, f64, f64)> = (0..48)
            .map(|h| {
                (
                    format!("2010-01-{:02}T{:02}:00:00Z", 1 + h / 24, h % 24),
                    0.0,
                    f64::from(h % 24),
                )
            })
            .collect();
        let borrowed: Vec<(&str, f64, f64)> =
            rows.iter().map(|(t, g, w)| (t.as_str(), *g, *w)).collect();
        let file = ReplayFile::parse(&csv(&borrowed), None, "x").unwrap();
        let plant = plant();
        let base = ReplayClock {
            anchor_s: 0,
            start_offset_s: 0.0,
            speedup: 1.0,
        };
        let offset = ReplayClock {
            start_offset_s: 10.0 * 3600.0,
            ..base
        };
        let fast = ReplayClock {
            speedup: 60.0,
            ..base
        };
        let at = |clock: ReplayClock, t: i64| Playback::new(&file, clock, &plant).kw_at(t);
        assert_eq!(at(offset, 0), at(base, 10 * 3600));
        assert_eq!(
            at(fast, 600),
            at(base, 10 * 3600),
            "10 minutes at 60× is 10 hours"
        );
        assert_eq!(
            Playback::new(&file, fast, &plant).samples_per_step(3600),
            240
        );
        assert_eq!(Playback::new(&file, base, &plant).samples_per_step(3600), 4);
        // A 60× clock steps every minute: one record per step again.
        assert_eq!(Playback::new(&file, fast, &plant).samples_per_step(60), 4);
    }

    #[test]
    fn a_file_without_what_the_plant_needs_is_refused() {
        let text = "time,wind_speed\n2010-01-01T00:00:00Z,5\n2010-01-01T01:00:00Z,6\n";
        let file = ReplayFile::parse(text, None, "wind.csv").unwrap();
        let err = file.check_covers(&plant()).unwrap_err();
        assert!(err.to_string().contains("no irradiance"), "{err}");
        let err = ReplayFile::parse("a,b\n1,2\n", None, "junk.csv").unwrap_err();
        assert!(
            err.to_string().starts_with("weather file junk.csv: line 1"),
            "{err}"
        );
    }
}
