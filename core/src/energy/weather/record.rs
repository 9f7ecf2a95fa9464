//! One instant of weather at one site, whatever file or forecast it came from.

/// Weather at `time_s`. Every measurement is optional; the models say what they do
/// without it (see `Plant::power_kw`).
///
/// Irradiances are in W/m². `time_s` is the instant the values stand for: for values
/// averaged over an interval, its midpoint (the TMY3 parser shifts hour-ending stamps).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WeatherRecord {
    /// Unix seconds, UTC.
    pub time_s: i64,
    /// Global horizontal irradiance.
    pub ghi: Option<f64>,
    /// Direct normal irradiance.
    pub dni: Option<f64>,
    /// Diffuse horizontal irradiance.
    pub dhi: Option<f64>,
    /// Air temperature at 2 m.
    pub temp_air_c: Option<f64>,
    /// `(height above ground m, speed m/s)`, any number of heights.
    pub wind_speeds: Vec<(f64, f64)>,
    /// Surface air pressure (ground level).
    pub pressure_pa: Option<f64>,
    /// Aerodynamic roughness length of the terrain.
    pub roughness_length_m: Option<f64>,
    /// Ground reflectance, 0..1.
    pub albedo: Option<f64>,
}

impl WeatherRecord {
    pub fn new(time_s: i64) -> Self {
        Self {
            time_s,
            ..Self::default()
        }
    }

    /// The wind speed measured at exactly `height_m`, if any.
    pub fn wind_speed_at(&self, height_m: f64) -> Option<f64> {
        self.wind_speeds
            .iter()
            .find(|(h, _)| *h == height_m)
            .map(|(_, v)| *v)
    }
}

/// The site a weather file describes, when its header says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteMetadata {
    pub name: Option<String>,
    pub latitude_deg: Option<f64>,
    pub longitude_deg: Option<f64>,
    pub elevation_m: Option<f64>,
    /// Offset of the file's local standard time from UTC, hours.
    pub utc_offset_hours: Option<f64>,
}
