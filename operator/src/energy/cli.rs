//! `verdant-operator energy`: a site's modelled output over a weather file, as CSV, so
//! plant engineers can check the model against their meters before they trust the
//! scheduler with it.
//!
//! ```text
//! verdant-operator energy --site site.yaml --weather greensboro_tmy3.csv > model.csv
//! time,solar_kw,wind_kw,total_kw
//! 1988-01-01T05:30:00Z,0.000,,
//! ```
//!
//! One row per weather record, at the instant the record stands for (TMY3 hour-ending
//! averages move to the middle of their hour). A part without inputs in a record (no
//! irradiance for the arrays, no wind speed for the turbines) is left empty, and so is
//! the total; a warning on stderr says how many.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use verdant_core::energy::{WeatherFormat, library_turbine_types, parse_weather, parse_weather_as};
use verdant_crds::{EnergySiteSpec, plant_from_site};

/// `verdant-operator energy` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct EnergyArgs {
    /// The EnergySite manifest (YAML). Only spec.location, spec.solar and spec.wind
    /// matter; forecast and nodeSelector may be absent.
    #[arg(
        long,
        value_name = "SITE.yaml",
        required_unless_present = "list_turbines"
    )]
    pub site: Option<PathBuf>,
    /// The weather file. Default: the manifest's spec.forecast.replay.path, relative to
    /// the manifest's folder.
    #[arg(long, value_name = "FILE")]
    pub weather: Option<PathBuf>,
    /// The weather file's format; detected from the content when absent.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Print the turbine types of the bundled windpowerlib/OEDB library and exit.
    #[arg(long)]
    pub list_turbines: bool,
}

/// Weather file formats on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// NREL TMY3.
    Tmy3,
    /// PVGIS TMY (CSV).
    Pvgis,
    /// CSV with a `time` column and pvlib's column names.
    Csv,
    /// windpowerlib's weather CSV (two header rows: variable and height).
    Windpowerlib,
}

impl From<FormatArg> for WeatherFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Tmy3 => WeatherFormat::Tmy3,
            FormatArg::Pvgis => WeatherFormat::PvgisTmy,
            FormatArg::Csv => WeatherFormat::Generic,
            FormatArg::Windpowerlib => WeatherFormat::Windpowerlib,
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    spec: EnergySiteSpec,
}

/// Runs the command: CSV to `out`, warnings to `warnings`.
pub fn run(args: &EnergyArgs, out: &mut dyn Write, warnings: &mut dyn Write) -> anyhow::Result<()> {
    if args.list_turbines {
        for name in library_turbine_types() {
            writeln!(out, "{name}")?;
        }
        return Ok(());
    }
    let site_path = args
        .site
        .as_ref()
        .ok_or_else(|| anyhow!("--site SITE.yaml is required"))?;
    let (spec, unknown_fields) = read_manifest(site_path)?;
    for field in unknown_fields {
        writeln!(
            warnings,
            "warning: {}: {field} is not a field of EnergySite; it is ignored",
            site_path.display()
        )?;
    }
    let plant = plant_from_site(&spec).map_err(|e| anyhow!("{}: {e}", site_path.display()))?;

    let replay = spec.forecast.as_ref().and_then(|f| f.replay.as_ref());
    let (weather_path, spec_format) = match (&args.weather, replay.and_then(|r| r.path.as_ref())) {
        (Some(path), _) => (path.clone(), None),
        (None, Some(path)) => (
            site_path.parent().unwrap_or(Path::new(".")).join(path),
            replay.and_then(|r| r.format).map(Into::into),
        ),
        (None, None) => bail!(
            "--weather FILE is required: {} has no spec.forecast.replay.path to default to",
            site_path.display()
        ),
    };
    let text = std::fs::read(&weather_path)
        .with_context(|| format!("reading the weather file {}", weather_path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let series = match args.format.map(WeatherFormat::from).or(spec_format) {
        Some(format) => parse_weather_as(&text, format),
        None => parse_weather(&text),
    }
    .map_err(|e| anyhow!("{}: {e}", weather_path.display()))?;

    let outputs = plant.power_series_kw(&series.records);
    let mut csv = std::io::BufWriter::new(out);
    writeln!(csv, "time,solar_kw,wind_kw,total_kw")?;
    let (mut no_sun_data, mut no_wind_data) = (0usize, 0usize);
    for (record, output) in series.records.iter().zip(&outputs) {
        let time = jiff::Timestamp::from_second(record.time_s)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| record.time_s.to_string());
        let part = |kw: f64, missing: bool| {
            if missing {
                String::new()
            } else {
                format!("{kw:.3}")
            }
        };
        no_sun_data += usize::from(output.solar_inputs_missing);
        no_wind_data += usize::from(output.wind_inputs_missing);
        let any_missing = output.solar_inputs_missing || output.wind_inputs_missing;
        writeln!(
            csv,
            "{time},{},{},{}",
            part(output.solar_kw, output.solar_inputs_missing),
            part(output.wind_kw, output.wind_inputs_missing),
            part(output.total_kw(), any_missing),
        )?;
    }
    csv.flush()?;
    drop(csv);
    let records = series.records.len();
    if no_sun_data > 0 {
        writeln!(
            warnings,
            "warning: {no_sun_data} of {records} records have no irradiance (ghi, or dni and dhi) for the site's {} PV array(s); solar_kw and total_kw are empty there",
            plant.arrays().len()
        )?;
    }
    if no_wind_data > 0 {
        writeln!(
            warnings,
            "warning: {no_wind_data} of {records} records have no wind speed for the site's {} turbine group(s); wind_kw and total_kw are empty there",
            plant.turbine_groups().len()
        )?;
    }
    Ok(())
}

/// Reads the EnergySite of a manifest (the only one, in a file of several documents) and
/// the spec fields it does not know.
fn read_manifest(path: &Path) -> anyhow::Result<(EnergySiteSpec, Vec<String>)> {
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
    let mut sites = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value = serde_yaml_ng::Value::deserialize(document)
            .map_err(|e| anyhow!("{name}: not YAML: {e}"))?;
        let kind = value.get("kind").and_then(|k| k.as_str());
        if kind == Some("EnergySite") || (kind.is_none() && value.get("spec").is_some()) {
            sites.push((index, value));
        }
    }
    let (index, value) = match sites.len() {
        0 => bail!("{name}: no EnergySite in the file (expected `kind: EnergySite` with a `spec`)"),
        1 => sites.remove(0),
        n => bail!("{name}: {n} EnergySites in the file; pass a file with one"),
    };
    // Deserialize from the text (not the Value) so errors carry line and column.
    let document = serde_yaml_ng::Deserializer::from_str(&text)
        .nth(index)
        .ok_or_else(|| anyhow!("{name}: document {index} vanished"))?;
    let manifest = Manifest::deserialize(document).map_err(|e| anyhow!("{name}: {e}"))?;
    let written = serde_json::to_value(value.get("spec"))?;
    let understood = serde_json::to_value(&manifest.spec)?;
    let mut unknown = Vec::new();
    unknown_fields(&written, &understood, "spec", &mut unknown);
    Ok((manifest.spec, unknown))
}

fn unknown_fields(
    written: &serde_json::Value,
    understood: &serde_json::Value,
    path: &str,
    unknown: &mut Vec<String>,
) {
    use serde_json::Value;
    match (written, understood) {
        (Value::Object(w), Value::Object(u)) => {
            for (key, value) in w {
                let here = format!("{path}.{key}");
                match u.get(key) {
                    Some(known) => unknown_fields(value, known, &here, unknown),
                    None => unknown.push(here),
                }
            }
        }
        (Value::Array(w), Value::Array(u)) => {
            for (i, (a, b)) in w.iter().zip(u).enumerate() {
                unknown_fields(a, b, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run_to_strings(args: &EnergyArgs) -> (anyhow::Result<()>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run(args, &mut out, &mut err);
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn args(site: &Path, weather: Option<&Path>) -> EnergyArgs {
        EnergyArgs {
            site: Some(site.to_owned()),
            weather: weather.map(Path::to_owned),
            format: None,
            list_turbines: false,
        }
    }

    const WEATHER: &str =
        "time,ghi,temp_air,wind_speed\n2024-06-21T17:00:00Z,850,28,6\n2024-06-21T18:00:00Z,,27,7\n";

    #[test]
    fn prints_one_row_per_record_and_leaves_missing_parts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let site = write(
            dir.path(),
            "site.yaml",
            "kind: EnergySite\nspec:\n  location: {latitude: 36.1, longitude: -79.95}\n  solar: [{name: a, capacityKw: 1000, tiltDegrees: 25}]\n  wind: [{name: w, turbineType: V90/2000, count: 2, hubHeightM: 80}]\n  tiltDegree: 3\n",
        );
        let weather = write(dir.path(), "w.csv", WEATHER);
        let (result, out, err) = run_to_strings(&args(&site, Some(&weather)));
        result.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "time,solar_kw,wind_kw,total_kw");
        assert_eq!(lines.len(), 3);
        let first: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(first[0], "2024-06-21T17:00:00Z");
        let solar: f64 = first[1].parse().unwrap();
        let wind: f64 = first[2].parse().unwrap();
        let total: f64 = first[3].parse().unwrap();
        assert!(solar > 500.0 && wind > 100.0);
        assert!((solar + wind - total).abs() < 0.002);
        assert!(lines[2].contains(",,"), "no irradiance: {}", lines[2]);
        assert!(err.contains("spec.tiltDegree is not a field"), "{err}");
        assert!(err.contains("1 of 2 records have no irradiance"), "{err}");
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let weather = write(dir.path(), "w.csv", WEATHER);
        let cases = [
            (
                "spec:\n  location: {latitude: 36.1, longitude: -79.95}\n  solar: [{name: a, capacityKw: lots}]\n",
                "spec.solar[0].capacityKw",
            ),
            (
                "spec:\n  location: {latitude: 36.1, longitude: -79.95}\n  wind: [{name: w, turbineType: E-82/2300x, count: 1, hubHeightM: 80}]\n",
                "spec.wind[0].turbineType: unknown turbine type `E-82/2300x`, did you mean E-82/2300",
            ),
            ("spec:\n  solar: []\n", "missing field `location`"),
            ("kind: ConfigMap\ndata: {}\n", "no EnergySite in the file"),
            ("spec: [\n", "not YAML"),
        ];
        for (manifest, expected) in cases {
            let site = write(dir.path(), "site.yaml", manifest);
            let (result, _, _) = run_to_strings(&args(&site, Some(&weather)));
            let message = format!("{:#}", result.unwrap_err());
            assert!(message.contains("site.yaml"), "{message}");
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
        let site = write(
            dir.path(),
            "site.yaml",
            "spec:\n  location: {latitude: 36.1, longitude: -79.95}\n  solar: [{name: a, capacityKw: 10}]\n",
        );
        let bad = write(
            dir.path(),
            "bad.csv",
            "time,ghi\n2024-06-21T17:00:00Z,8x0\n",
        );
        let (result, _, _) = run_to_strings(&args(&site, Some(&bad)));
        let message = format!("{:#}", result.unwrap_err());
        assert!(
            message.contains("bad.csv: line 2, field `ghi`"),
            "{message}"
        );
        let (result, _, _) = run_to_strings(&args(&site, None));
        assert!(format!("{:#}", result.unwrap_err()).contains("--weather FILE is required"));
    }

    #[test]
    fn the_replay_path_is_relative_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("weather")).unwrap();
        write(&dir.path().join("weather"), "w.csv", WEATHER);
        let site = write(
            dir.path(),
            "site.yaml",
            "spec:\n  location: {latitude: 36.1, longitude: -79.95}\n  solar: [{name: a, capacityKw: 10}]\n  forecast: {provider: Replay, replay: {path: weather/w.csv, format: csv}}\n",
        );
        let (result, out, _) = run_to_strings(&args(&site, None));
        result.unwrap();
        assert_eq!(out.lines().count(), 3);
    }
}
