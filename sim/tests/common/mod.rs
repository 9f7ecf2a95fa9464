//! Inputs shared by the integration tests: EnergySite manifests replaying the weather
//! files in `core/data/weather`, and small generated ITP traces.

use std::path::{Path, PathBuf};

use verdant_sim::workload::SplitMix64;

fn weather(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/data/weather")
        .join(file)
}

/// Writes two sites into `dir`: Greensboro solar (TMY3) and a wind site (windpowerlib
/// 2010), each sized for a small cluster.
pub fn write_sites(dir: &Path) {
    let solar = format!(
        r#"apiVersion: verdant.dev/v1alpha1
kind: EnergySite
metadata: {{name: solar}}
spec:
  location: {{latitude: 36.1, longitude: -79.95, elevationM: 273}}
  solar:
  - {{name: field, capacityKw: 80, tiltDegrees: 25}}
  grid: {{carbonIntensityGPerKwh: 380}}
  pue: 1.2
  forecast:
    provider: Replay
    replay: {{path: {}}}
"#,
        weather("pvlib_723170TYA_greensboro_nc_tmy3.csv").display()
    );
    let wind = format!(
        r#"apiVersion: verdant.dev/v1alpha1
kind: EnergySite
metadata: {{name: wind}}
spec:
  location: {{latitude: 53.5, longitude: 9.9}}
  wind:
  - name: small
    count: 1
    hubHeightM: 40
    powerCurve:
    - {{speedMs: 3, powerKw: 0}}
    - {{speedMs: 8, powerKw: 30}}
    - {{speedMs: 12, powerKw: 60}}
    - {{speedMs: 25, powerKw: 60}}
  grid: {{carbonIntensityGPerKwh: 350}}
  forecast:
    provider: Replay
    replay: {{path: {}}}
"#,
        weather("windpowerlib_example_weather_2010.csv").display()
    );
    std::fs::write(dir.join("solar.yaml"), solar).unwrap();
    std::fs::write(dir.join("wind.yaml"), wind).unwrap();
}

/// An ITP trace of `jobs` jobs submitted over `days` days: 1 to 16 GPUs, 10 minutes to
/// 20 hours, from a fixed generator.
pub fn write_trace(path: &Path, jobs: usize, days: i64, seed: u64) {
    let mut rng = SplitMix64::new(seed, 0, 0);
    let mut csv = String::from("job_id,submission_time,duration,num_gpu\n");
    for i in 0..jobs {
        let submit = (rng.next_f64() * (days * 86_400) as f64) as i64;
        let duration = 600 + (rng.next_f64().powi(3) * 72_000.0) as i64;
        let gpus = [1, 1, 1, 2, 4, 8, 16][(rng.next_u64() % 7) as usize];
        csv.push_str(&format!("job-{i:04},{submit},{duration},{gpus}\n"));
    }
    std::fs::write(path, csv).unwrap();
}
