//! Energy sites for a simulation: EnergySite manifests read from a folder, their plants
//! run over replayed weather, aligned to the simulated dates.
//!
//! Weather years are aligned by calendar date: the simulated hour `YYYY-MM-DD HH:00 UTC`
//! takes the file's record of the same month, day and UTC hour, whatever year the file
//! holds (TMY files mix years by month). 29 February takes 28 February's weather; a
//! missing hour takes the same hour of the nearest day that has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use verdant_core::energy::{Battery, WeatherRecord, parse_weather, parse_weather_as};
use verdant_crds::{EnergySite, ForecastProvider, StaticForecast, plant_from_site};

use crate::civil::{DAY_S, HOUR_S, utc_date, utc_hour};
use crate::error::SimError;

/// A site as the simulator uses it: constants from the manifest and an hourly supply
/// series covering the simulated span and the forecast beyond it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimSite {
    pub name: String,
    pub pue: f64,
    pub grid_carbon_g_per_kwh: f64,
    /// Unix seconds of the first hour of the series (a whole UTC hour).
    pub start_s: i64,
    /// Solar output per hour, kW.
    pub solar_kw: Vec<f64>,
    /// Wind output per hour, kW.
    pub wind_kw: Vec<f64>,
    /// Where the supply comes from, for the report.
    pub source: String,
    /// Hours for which the weather file had no record of that date and hour (0 kW used).
    pub missing_hours: usize,
    /// The site has PV arrays (`spec.solar`).
    pub has_solar: bool,
    /// Its batteries (`spec.storage`), in the spec's order.
    pub storage: Vec<Battery>,
}

impl SimSite {
    /// A site with a given hourly supply (solar only), for tests and hand-built cases.
    pub fn with_supply(name: &str, start_s: i64, supply_kw: Vec<f64>) -> Self {
        Self {
            name: name.to_owned(),
            pue: 1.0,
            grid_carbon_g_per_kwh: 400.0,
            start_s,
            wind_kw: vec![0.0; supply_kw.len()],
            solar_kw: supply_kw,
            source: "given".to_owned(),
            missing_hours: 0,
            has_solar: true,
            storage: Vec::new(),
        }
    }

    /// Multiplies the supply by `factor` (a bigger or smaller plant).
    pub fn scale_supply(&mut self, factor: f64) {
        for kw in self.solar_kw.iter_mut().chain(self.wind_kw.iter_mut()) {
            *kw *= factor;
        }
        self.source = format!("{} × {factor}", self.source);
    }

    /// Adds a battery of `hours` × `load_kw` kWh that charges and discharges at up to
    /// `load_kw` (90 % round trip, 10 % floor): `--battery-hours`.
    pub fn add_battery(&mut self, hours: f64, load_kw: f64) {
        self.storage.push(Battery {
            name: format!("battery-{}h", hours),
            capacity_kwh: hours * load_kw,
            max_charge_kw: load_kw,
            max_discharge_kw: load_kw,
            round_trip_efficiency: 0.9,
            min_soc_fraction: 0.1,
        });
        self.source = format!("{} + {hours} h battery", self.source);
    }

    /// Renewable supply in kW during the hour containing `time_s`; 0 outside the series.
    pub fn supply_kw_at(&self, time_s: i64) -> f64 {
        let hour = (time_s - self.start_s).div_euclid(HOUR_S);
        usize::try_from(hour)
            .ok()
            .and_then(|h| Some(self.solar_kw.get(h)? + self.wind_kw.get(h)?))
            .unwrap_or(0.0)
    }

    /// Hours in the series.
    pub fn hours(&self) -> usize {
        self.solar_kw.len()
    }
}

/// Reads every EnergySite in `dir` (files `*.yaml`/`*.yml`, several documents each
/// allowed; other kinds are skipped) and computes each site's hourly supply for
/// `hours` hours from `start_s` (a whole UTC hour). Sites are sorted by name.
pub fn load_sites(dir: &Path, start_s: i64, hours: usize) -> Result<Vec<SimSite>, SimError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| SimError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml")
                })
        })
        .collect();
    files.sort();
    let mut sites: BTreeMap<String, SimSite> = BTreeMap::new();
    for path in files {
        for site in read_manifest(&path)? {
            let name = site.metadata.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(SimError::Manifest {
                    path,
                    message: "EnergySite without metadata.name".to_owned(),
                });
            }
            let folder = path.parent().unwrap_or(Path::new("."));
            let sim_site = site_supply(&name, &site, folder, start_s, hours)?;
            if sites.insert(name.clone(), sim_site).is_some() {
                return Err(SimError::DuplicateSite(name));
            }
        }
    }
    if sites.is_empty() {
        return Err(SimError::NoSites(dir.to_owned()));
    }
    Ok(sites.into_values().collect())
}

/// The EnergySites in one YAML file.
fn read_manifest(path: &Path) -> Result<Vec<EnergySite>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut sites = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value =
            <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document).map_err(|e| {
                SimError::Manifest {
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        if value.is_null() || value.get("kind").and_then(|k| k.as_str()) != Some("EnergySite") {
            continue;
        }
        let site: EnergySite =
            serde_yaml_ng::from_value(value).map_err(|e| SimError::Manifest {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        sites.push(site);
    }
    Ok(sites)
}

fn site_supply(
    name: &str,
    site: &EnergySite,
    folder: &Path,
    start_s: i64,
    hours: usize,
) -> Result<SimSite, SimError> {
    let spec = &site.spec;
    let mut sim = SimSite {
        name: name.to_owned(),
        pue: if spec.pue.is_finite() {
            spec.pue.max(1.0)
        } else {
            1.0
        },
        grid_carbon_g_per_kwh: spec.grid.carbon_intensity_g_per_kwh.max(0.0),
        start_s,
        solar_kw: vec![0.0; hours],
        wind_kw: vec![0.0; hours],
        source: "none (no forecast: no renewable supply)".to_owned(),
        missing_hours: 0,
        has_solar: !spec.solar.is_empty(),
        storage: spec.storage.iter().map(|b| b.battery()).collect(),
    };
    let Some(forecast) = &spec.forecast else {
        return Ok(sim);
    };
    match forecast.provider {
        ForecastProvider::Static => {
            if let Some(static_forecast) = &forecast.r#static {
                for h in 0..hours {
                    sim.solar_kw[h] = static_kw(static_forecast, start_s + h as i64 * HOUR_S);
                }
                sim.source = "Static".to_owned();
            }
            Ok(sim)
        }
        ForecastProvider::Replay => {
            let replay = forecast.replay.as_ref().ok_or_else(|| SimError::Manifest {
                path: folder.to_owned(),
                message: format!("EnergySite {name}: provider Replay without forecast.replay"),
            })?;
            let relative = replay
                .path
                .as_ref()
                .ok_or_else(|| SimError::ReplayWithoutPath {
                    site: name.to_owned(),
                })?;
            let path = folder.join(relative);
            let plant = plant_from_site(spec).map_err(|source| SimError::Plant {
                site: name.to_owned(),
                source,
            })?;
            let text = std::fs::read_to_string(&path).map_err(|source| SimError::Read {
                path: path.clone(),
                source,
            })?;
            let series = match replay.format {
                Some(format) => parse_weather_as(&text, format.into()),
                None => parse_weather(&text),
            }
            .map_err(|e| SimError::Weather {
                site: name.to_owned(),
                path: path.clone(),
                message: e.to_string(),
            })?;
            let aligned = AlignedWeather::new(series.records);
            for h in 0..hours {
                let hour_s = start_s + h as i64 * HOUR_S;
                match aligned.record_for_hour(hour_s) {
                    Some(record) => {
                        let output = plant.power_kw(&record);
                        sim.solar_kw[h] = finite_non_negative(output.solar_kw);
                        sim.wind_kw[h] = finite_non_negative(output.wind_kw);
                    }
                    None => sim.missing_hours += 1,
                }
            }
            sim.source = format!("Replay of {relative}");
            Ok(sim)
        }
        ForecastProvider::OpenMeteo | ForecastProvider::Prometheus => {
            Err(SimError::UnsupportedProvider {
                site: name.to_owned(),
                provider: format!("{:?}", forecast.provider),
            })
        }
    }
}

/// A Static provider's kW at an instant (the operator's rule: constant, or by UTC hour).
fn static_kw(forecast: &StaticForecast, time_s: i64) -> f64 {
    let kw = match (&forecast.hourly_kw, forecast.constant_kw) {
        (Some(hourly), _) => hourly.get(utc_hour(time_s) as usize).copied(),
        (None, constant) => constant,
    };
    finite_non_negative(kw.unwrap_or(0.0))
}

fn finite_non_negative(v: f64) -> f64 {
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

/// Weather records indexed by (month, day, UTC hour).
pub struct AlignedWeather {
    records: Vec<WeatherRecord>,
    by_date_hour: BTreeMap<(u32, u32, u32), usize>,
}

impl AlignedWeather {
    pub fn new(records: Vec<WeatherRecord>) -> Self {
        let mut by_date_hour = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let (_, month, day) = utc_date(record.time_s);
            // The first record of a date and hour wins (a file's own duplicates).
            by_date_hour
                .entry((month, day, utc_hour(record.time_s)))
                .or_insert(i);
        }
        Self {
            records,
            by_date_hour,
        }
    }

    /// The record for the hour starting at `hour_s`, re-dated into that hour (keeping its
    /// offset within the hour, such as a TMY3 half-hour midpoint) so that the sun is where
    /// it was when the values were measured. `None` if no day within three of the date has
    /// that hour.
    pub fn record_for_hour(&self, hour_s: i64) -> Option<WeatherRecord> {
        let hour = utc_hour(hour_s);
        for shift_days in [0, -1, 1, -2, 2, -3, 3] {
            let (_, mut month, mut day) = utc_date(hour_s + shift_days * DAY_S);
            if (month, day) == (2, 29) {
                (month, day) = (2, 28);
            }
            if let Some(&i) = self.by_date_hour.get(&(month, day, hour)) {
                let mut record = self.records[i].clone();
                record.time_s = hour_s + record.time_s.rem_euclid(HOUR_S);
                return Some(record);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::civil::utc_midnight_s;

    #[test]
    fn weather_is_aligned_by_date_and_hour_across_years() {
        // Records from 1996 and 2003 (as in a TMY file), at half past the hour.
        let r = |y, m, d, h: i64, ghi| WeatherRecord {
            ghi: Some(ghi),
            ..WeatherRecord::new(utc_midnight_s(y, m, d) + h * HOUR_S + 1800)
        };
        let aligned = AlignedWeather::new(vec![
            r(1996, 2, 28, 12, 500.0),
            r(2003, 6, 1, 12, 900.0),
            r(2003, 6, 1, 13, 950.0),
        ]);
        let june = aligned
            .record_for_hour(utc_midnight_s(2019, 6, 1) + 13 * HOUR_S)
            .unwrap();
        assert_eq!(june.ghi, Some(950.0));
        assert_eq!(june.time_s, utc_midnight_s(2019, 6, 1) + 13 * HOUR_S + 1800);
        // Leap day takes 28 February's weather; a missing day the nearest one's.
        let leap = aligned
            .record_for_hour(utc_midnight_s(2020, 2, 29) + 12 * HOUR_S)
            .unwrap();
        assert_eq!(leap.ghi, Some(500.0));
        let near = aligned
            .record_for_hour(utc_midnight_s(2019, 6, 3) + 12 * HOUR_S)
            .unwrap();
        assert_eq!(near.ghi, Some(900.0));
        assert!(
            aligned
                .record_for_hour(utc_midnight_s(2019, 9, 1) + 12 * HOUR_S)
                .is_none()
        );
    }

    #[test]
    fn missing_folder_and_empty_folder_are_clear_errors() {
        let err = load_sites(Path::new("/nonexistent/sites"), 0, 1).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sites"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = load_sites(dir.path(), 0, 1).unwrap_err();
        assert!(matches!(err, SimError::NoSites(_)), "{err}");
    }

    #[test]
    fn static_and_replay_sites_load_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sites.yaml"),
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
apiVersion: verdant.dev/v1alpha1
kind: EnergySite
metadata: {name: flat}
spec:
  location: {latitude: 45, longitude: 8}
  forecast:
    provider: Static
    static: {constantKw: 120}
---
apiVersion: verdant.dev/v1alpha1
kind: EnergySite
metadata: {name: sunny}
spec:
  location: {latitude: 45, longitude: 8, elevationM: 250}
  solar:
  - {name: field, capacityKw: 1000, tiltDegrees: 30}
  forecast:
    provider: Replay
    replay: {path: weather/w.csv}
"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("weather")).unwrap();
        // Generic CSV: a clear June day at 45° N, 2010.
        let mut csv = String::from("time,ghi,temp_air,wind_speed\n");
        for h in 0..24 {
            let ghi = (900.0 * ((h as f64 - 11.5) / 12.0 * std::f64::consts::PI).cos()).max(0.0);
            csv.push_str(&format!("2010-06-01T{h:02}:00:00Z,{ghi:.0},25,2\n"));
        }
        std::fs::write(dir.path().join("weather/w.csv"), csv).unwrap();
        let start = utc_midnight_s(2019, 6, 1);
        let sites = load_sites(dir.path(), start, 24).unwrap();
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].name, "flat");
        assert!(sites[0].solar_kw.iter().all(|kw| *kw == 120.0));
        let sunny = &sites[1];
        assert_eq!(sunny.missing_hours, 0);
        assert_eq!(sunny.supply_kw_at(start + 2 * HOUR_S), 0.0, "night");
        assert!(sunny.supply_kw_at(start + 11 * HOUR_S) > 500.0, "noon");
    }

    #[test]
    fn live_providers_and_bad_manifests_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            r#"
apiVersion: verdant.dev/v1alpha1
kind: EnergySite
metadata: {name: live}
spec:
  location: {latitude: 45, longitude: 8}
  forecast: {provider: OpenMeteo, openMeteo: {}}
"#,
        )
        .unwrap();
        let err = load_sites(dir.path(), 0, 1).unwrap_err().to_string();
        assert!(err.contains("live") && err.contains("OpenMeteo"), "{err}");
        std::fs::write(
            dir.path().join("a.yaml"),
            "kind: EnergySite\nmetadata: {name: x}\nspec: {pue: [1]}\n",
        )
        .unwrap();
        let err = load_sites(dir.path(), 0, 1).unwrap_err().to_string();
        assert!(err.contains("a.yaml"), "{err}");
    }
}
