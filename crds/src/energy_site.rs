//! `EnergySite`: a power domain with its own solar and wind plant, feeding a set of nodes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

mod storage;
pub use storage::{StorageSpec, StorageStatus};

/// A power domain: one site with its own solar and wind plant and a grid connection,
/// feeding the nodes its `nodeSelector` matches. Verdant turns the site's weather forecast
/// into kW and places training jobs where renewable headroom is.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "verdant.dev",
    version = "v1alpha1",
    kind = "EnergySite",
    status = "EnergySiteStatus",
    shortname = "esite",
    category = "verdant",
    doc = "A power domain with its own solar and wind plant and a grid connection, feeding a set of nodes.",
    printcolumn(
        name = "Solar kW",
        type_ = "number",
        json_path = ".status.renewableKw.solar"
    ),
    printcolumn(
        name = "Wind kW",
        type_ = "number",
        json_path = ".status.renewableKw.wind"
    ),
    printcolumn(name = "Load kW", type_ = "number", json_path = ".status.loadKw"),
    printcolumn(
        name = "Headroom kW",
        type_ = "number",
        json_path = ".status.headroomKw"
    ),
    printcolumn(
        name = "Battery %",
        type_ = "number",
        json_path = ".status.storage[0].stateOfChargePercent"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EnergySiteSpec {
    /// The nodes this site powers. A node must be matched by at most one site.
    #[serde(default)]
    pub node_selector: LabelSelector,

    /// Where the site is; the solar model needs it for the sun's position.
    pub location: Location,

    /// The site's photovoltaic arrays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub solar: Vec<SolarArray>,

    /// The site's wind turbine groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub wind: Vec<WindTurbineGroup>,

    /// The grid connection, used when renewables fall short.
    #[serde(default)]
    pub grid: GridConnection,

    /// Power usage effectiveness: facility power / IT power. At least 1.0; default 1.2.
    #[serde(default = "default_pue")]
    #[schemars(range(min = 1.0, max = 5.0))]
    pub pue: f64,

    /// Where the site's weather (or power) forecast comes from. Without it the site has no
    /// renewable supply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,

    /// The site's batteries. They charge from renewable surplus only and discharge into
    /// deficits; what they can deliver over a job's run counts as renewable headroom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("spec.storage[].name must be unique within the site"))]
    pub storage: Vec<StorageSpec>,
}

fn default_pue() -> f64 {
    1.2
}

/// A point on Earth.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Latitude in degrees, north positive. -90 to 90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: f64,
    /// Longitude in degrees, east positive. -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: f64,
    /// Elevation above sea level in metres. Default 0.
    #[serde(default)]
    pub elevation_m: f64,
}

/// A photovoltaic array with a PVWatts-style inverter.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SolarArray {
    /// A name for the array, unique within the site.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// DC nameplate capacity in kW (at 1000 W/m² and 25 °C cells). At least 0.
    #[schemars(range(min = 0.0))]
    pub capacity_kw: f64,
    /// Tilt of the modules from horizontal, in degrees. 0 to 90.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 90.0))]
    pub tilt_degrees: f64,
    /// Azimuth the modules face, in degrees clockwise from north (180 = south). 0 to <360.
    #[serde(default = "default_azimuth")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self < 360.0").message("azimuthDegrees must be at least 0 and less than 360"))]
    pub azimuth_degrees: f64,
    /// DC system losses in percent (soiling, wiring, mismatch…), as in PVWatts. 0 to 100;
    /// default 14.
    #[serde(default = "default_losses_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub losses_percent: f64,
}

fn default_azimuth() -> f64 {
    180.0
}

fn default_losses_percent() -> f64 {
    14.0
}

/// A group of identical wind turbines. Give either `turbineType` or `powerCurve`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.turbineType) != has(self.powerCurve)").message("set exactly one of turbineType and powerCurve"))]
pub struct WindTurbineGroup {
    /// A name for the group, unique within the site.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A turbine model from the bundled windpowerlib/OEDB library, such as `E-82/2350`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub turbine_type: Option<String>,
    /// A custom power curve: points of wind speed (m/s) and power (kW), by increasing speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 200))]
    pub power_curve: Option<Vec<PowerCurvePoint>>,
    /// Number of turbines in the group. At least 1.
    #[schemars(range(min = 1))]
    pub count: i32,
    /// Hub height in metres. Greater than 0.
    #[x_kube(validation = Rule::new("self > 0.0").message("hubHeightM must be greater than 0"))]
    pub hub_height_m: f64,
}

/// One point of a turbine power curve.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerCurvePoint {
    /// Wind speed at hub height in m/s. At least 0.
    #[schemars(range(min = 0.0))]
    pub speed_ms: f64,
    /// Electrical output in kW. At least 0.
    #[schemars(range(min = 0.0))]
    pub power_kw: f64,
}

/// The site's grid connection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GridConnection {
    /// Carbon intensity of grid power in gCO₂/kWh. At least 0; default 400.
    #[serde(default = "default_carbon_intensity")]
    #[schemars(range(min = 0.0))]
    pub carbon_intensity_g_per_kwh: f64,
}

impl Default for GridConnection {
    fn default() -> Self {
        Self {
            carbon_intensity_g_per_kwh: default_carbon_intensity(),
        }
    }
}

fn default_carbon_intensity() -> f64 {
    400.0
}

/// Which forecast provider feeds a site.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum ForecastProvider {
    /// Weather forecasts from an Open-Meteo server (`openMeteo`).
    OpenMeteo,
    /// A weather file replayed from "now" (`replay`); for demos, tests and what-ifs.
    Replay,
    /// A fixed supply in kW (`static`).
    Static,
    /// Measured site output from Prometheus for "now" (`prometheus`).
    Prometheus,
}

/// The site's forecast source. Set `provider` and the sub-object named after it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'OpenMeteo' || has(self.openMeteo)").message("provider OpenMeteo requires spec.forecast.openMeteo").field_path(".openMeteo"),
    validation = Rule::new("self.provider != 'Replay' || has(self.replay)").message("provider Replay requires spec.forecast.replay").field_path(".replay"),
    validation = Rule::new("self.provider != 'Static' || has(self.static)").message("provider Static requires spec.forecast.static").field_path(".static"),
    validation = Rule::new("self.provider != 'Prometheus' || has(self.prometheus)").message("provider Prometheus requires spec.forecast.prometheus").field_path(".prometheus")
)]
pub struct ForecastSpec {
    /// OpenMeteo, Replay, Static or Prometheus.
    pub provider: ForecastProvider,
    /// How often the forecast is refreshed, as a Go duration. Default 15m.
    #[serde(default = "default_refresh_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1s')").message("spec.forecast.refreshInterval must be a duration of at least 1s, such as 15m"))]
    pub refresh_interval: Duration,
    /// Settings of the OpenMeteo provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_meteo: Option<OpenMeteoForecast>,
    /// Settings of the Replay provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayForecast>,
    /// Settings of the Static provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#static: Option<StaticForecast>,
    /// Settings of the Prometheus provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusForecast>,
}

fn default_refresh_interval() -> Duration {
    std::time::Duration::from_secs(15 * 60).into()
}

/// Open-Meteo weather forecast settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenMeteoForecast {
    /// Base URL of the Open-Meteo API; many sites run their own server.
    /// Default `https://api.open-meteo.com`.
    #[serde(default = "default_open_meteo_url")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,
}

fn default_open_meteo_url() -> String {
    "https://api.open-meteo.com".to_owned()
}

/// Replays a weather file as if it started now.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.path) != has(self.configMapRef)").message("set exactly one of spec.forecast.replay.path and spec.forecast.replay.configMapRef"))]
pub struct ReplayForecast {
    /// Path of the weather file on the operator's filesystem. A relative path is resolved
    /// against the manifest's folder when the manifest is read from disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A ConfigMap key holding the weather file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// The file format: csv, tmy3 or pvgis. Detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WeatherFormat>,
    /// Where in the file to start, as a Go duration from its first record. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub start_offset: Option<Duration>,
    /// Replay speed: 1 is real time, 60 plays an hour of weather per minute. Default 1.
    #[serde(default = "default_speedup")]
    #[schemars(range(min = 0.001, max = 100000.0))]
    pub speedup: f64,
}

fn default_speedup() -> f64 {
    1.0
}

/// A key of a ConfigMap in a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Namespace of the ConfigMap.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the file.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Weather file formats Verdant reads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WeatherFormat {
    /// Generic CSV with pvlib's column names (time, ghi, dni, dhi, temp_air, wind_speed…).
    Csv,
    /// NREL TMY3.
    Tmy3,
    /// PVGIS TMY (CSV).
    Pvgis,
}

/// A fixed renewable supply: a constant, or a profile by UTC hour.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.constantKw) != has(self.hourlyKw)").message("set exactly one of spec.forecast.static.constantKw and spec.forecast.static.hourlyKw"))]
pub struct StaticForecast {
    /// A constant renewable supply in kW. At least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub constant_kw: Option<f64>,
    /// Renewable supply in kW for each UTC hour 0..23: exactly 24 values, each at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 24, max = 24))]
    #[x_kube(validation = Rule::new("self.all(v, v >= 0.0)").message("every hourlyKw value must be at least 0"))]
    pub hourly_kw: Option<Vec<f64>>,
}

/// Measured site output from Prometheus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusForecast {
    /// Base URL of the Prometheus HTTP API, such as `http://prometheus:9090`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
    /// An instant PromQL query returning the site's current renewable output in kW.
    #[schemars(length(min = 1))]
    pub query: String,
    /// Weather for the forecast beyond "now"; without it the measured value is held
    /// constant and decays (conservatively) over the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weather: Option<Box<WeatherSource>>,
}

/// A weather source for the Prometheus provider's forecast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeatherSource {
    /// Open-Meteo settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_meteo: Option<OpenMeteoForecast>,
    /// Replay settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayForecast>,
}

/// What Verdant knows of a site's power now and ahead.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnergySiteStatus {
    /// Renewable output now, in kW.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewable_kw: Option<RenewableKw>,
    /// Facility load now (IT load × PUE), in kW.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_kw: Option<f64>,
    /// Renewable output minus load, in kW; negative means grid power is being drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom_kw: Option<f64>,
    /// Hourly renewable forecast for the next 48 hours (for an operator run with
    /// `--time-scale`, 48 steps of an hour divided by the scale: 30 s in `make demo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<ForecastPoint>,
    /// When the forecast was last refreshed successfully (Static sites: when the operator
    /// read the spec, then the start of each hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_forecast_time: Option<Time>,
    /// Standard conditions: `Ready`, `ForecastDegraded`, `NodeSelectorOverlap`, and
    /// `RenewableDeficit` (load above renewable output, since its `lastTransitionTime`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The estimated state of charge of each battery of `spec.storage`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageStatus>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Renewable output by source, in kW.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenewableKw {
    /// Solar output in kW.
    pub solar: f64,
    /// Wind output in kW.
    pub wind: f64,
    /// solar + wind, in kW.
    pub total: f64,
}

/// One hour of the renewable forecast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastPoint {
    /// Start of the hour.
    pub time: Time,
    /// Forecast solar output in kW.
    pub solar_kw: f64,
    /// Forecast wind output in kW.
    pub wind_kw: f64,
}
