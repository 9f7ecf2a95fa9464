//! Physical models that turn weather into kW: solar PV after pvlib's PVWatts chain,
//! wind after windpowerlib's power-curve chain, and parsers for the weather files and the
//! forecast services' answers they read. Pure: text in, numbers out; time is Unix seconds
//! (UTC).
//!
//! ```
//! use verdant_core::energy::{Location, Plant, PvArray, Turbine, TurbineGroup, WeatherRecord};
//!
//! let plant = Plant::new(
//!     Location::new(45.0, 8.0, 250.0),
//!     vec![PvArray::new(1000.0, 25.0, 180.0)],
//!     vec![TurbineGroup::new(Turbine::from_library("E-82/2350")?, 4, 108.0)],
//! )?;
//! let noon = WeatherRecord {
//!     ghi: Some(800.0),
//!     temp_air_c: Some(25.0),
//!     wind_speeds: vec![(10.0, 6.0)],
//!     ..WeatherRecord::new(1_719_835_200) // 2024-07-01T12:00:00Z
//! };
//! let output = plant.power_kw(&noon);
//! assert!(output.solar_kw > 500.0 && output.wind_kw > 1000.0);
//! # Ok::<(), verdant_core::energy::PlantConfigError>(())
//! ```
//!
//! The equations, their sources and the measured agreement with pvlib and windpowerlib
//! are in `docs/energy.md`.

mod calendar;
pub mod error;
pub mod fleet;
pub mod forecast;
pub mod location;
pub mod plant;
pub mod solar;
pub mod storage;
pub mod weather;
pub mod wind;

pub use error::PlantConfigError;
pub use fleet::fleet_power_series_kw;
pub use location::Location;
pub use plant::{Plant, PlantOutput, PlantSpec};
pub use solar::array::{PvArray, PvArrayOutput, SolarConditions};
pub use solar::cell_temperature::CellTemperatureModel;
pub use solar::position::{SolarPosition, SunAtTime, solar_position};
pub use storage::{Battery, BatteryState, Flow, Storage};
pub use weather::{
    SiteMetadata, WeatherFormat, WeatherParseError, WeatherProblem, WeatherRecord, WeatherSeries,
    detect_format, parse_weather, parse_weather_as,
};
pub use wind::library::{library_power_curve, library_turbine_types};
pub use wind::power_curve::PowerCurve;
pub use wind::turbine::{Turbine, TurbineGroup, TurbineSpec, WindConditions};
