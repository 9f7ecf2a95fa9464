//! A fixed-tilt PV array with its own PVWatts inverter: weather in, AC kW out.

use serde::{Deserialize, Serialize};

use super::cell_temperature::CellTemperatureModel;
use super::iam::physical_iam;
use super::position::SolarPosition;
use super::pvwatts::{self, ETA_INV_NOM, GAMMA_PDC_PER_C};
use super::transposition::{Orientation, PoaIrradiance};
use crate::energy::error::PlantConfigError;

/// Ground reflectance used when the weather does not say (pvlib's default).
pub const DEFAULT_ALBEDO: f64 = 0.25;
/// PVWatts' default DC/AC ratio.
pub const DEFAULT_DC_AC_RATIO: f64 = 1.2;
/// PVWatts' default system losses (soiling, wiring, mismatch, availability, ...).
pub const DEFAULT_LOSSES_PERCENT: f64 = 14.0;

/// One fixed-tilt array and its inverter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvArray {
    /// DC nameplate at standard test conditions (1000 W/m², 25 °C cells).
    pub capacity_kw: f64,
    /// From horizontal: 0 flat, 90 vertical.
    pub tilt_deg: f64,
    /// Direction the modules face, clockwise from north: 180 faces south.
    pub azimuth_deg: f64,
    /// DC-side system losses, percent of DC output.
    #[serde(default = "default_losses_percent")]
    pub losses_percent: f64,
    /// DC nameplate over inverter AC nameplate; AC output clips at `capacity_kw / dc_ac_ratio`.
    #[serde(default = "default_dc_ac_ratio")]
    pub dc_ac_ratio: f64,
    /// PVWatts nominal inverter efficiency.
    #[serde(default = "default_inverter_efficiency")]
    pub inverter_efficiency: f64,
    /// Temperature coefficient of DC power, per °C.
    #[serde(default = "default_gamma_pdc")]
    pub gamma_pdc_per_c: f64,
    /// Ground reflectance when the weather record has none.
    #[serde(default = "default_albedo")]
    pub albedo: f64,
    #[serde(default)]
    pub cell_temperature: CellTemperatureModel,
}

fn default_losses_percent() -> f64 {
    DEFAULT_LOSSES_PERCENT
}
fn default_dc_ac_ratio() -> f64 {
    DEFAULT_DC_AC_RATIO
}
fn default_inverter_efficiency() -> f64 {
    ETA_INV_NOM
}
fn default_gamma_pdc() -> f64 {
    GAMMA_PDC_PER_C
}
fn default_albedo() -> f64 {
    DEFAULT_ALBEDO
}

/// Everything about the sky and air that the arrays of one site share at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolarConditions {
    pub sun: SolarPosition,
    /// Global horizontal, direct normal and diffuse horizontal irradiance, W/m².
    pub ghi: f64,
    pub dni: f64,
    pub dhi: f64,
    pub dni_extra_w_m2: f64,
    pub temp_air_c: f64,
    pub wind_speed_10m_ms: f64,
    /// Measured albedo; `None` lets each array use its own default.
    pub albedo: Option<f64>,
}

/// The steps of the chain for one array, for diagnosis and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PvArrayOutput {
    pub poa: PoaIrradiance,
    /// Plane-of-array irradiance the cells convert: beam after glass losses, plus diffuse.
    pub effective_irradiance_w_m2: f64,
    pub temp_cell_c: f64,
    /// DC after system losses, before the inverter.
    pub dc_kw: f64,
    pub ac_kw: f64,
}

impl PvArray {
    /// An array with PVWatts defaults for everything but its size and orientation.
    pub fn new(capacity_kw: f64, tilt_deg: f64, azimuth_deg: f64) -> Self {
        Self {
            capacity_kw,
            tilt_deg,
            azimuth_deg,
            losses_percent: DEFAULT_LOSSES_PERCENT,
            dc_ac_ratio: DEFAULT_DC_AC_RATIO,
            inverter_efficiency: ETA_INV_NOM,
            gamma_pdc_per_c: GAMMA_PDC_PER_C,
            albedo: DEFAULT_ALBEDO,
            cell_temperature: CellTemperatureModel::default(),
        }
    }

    pub fn with_losses_percent(mut self, losses_percent: f64) -> Self {
        self.losses_percent = losses_percent;
        self
    }

    pub fn ac_nameplate_kw(&self) -> f64 {
        self.capacity_kw / self.dc_ac_ratio
    }

    pub fn validate(&self) -> Result<(), PlantConfigError> {
        PlantConfigError::check_range("capacityKw", self.capacity_kw, 0.0, 1e7)?;
        PlantConfigError::check_range("tiltDeg", self.tilt_deg, 0.0, 90.0)?;
        PlantConfigError::check_range("azimuthDeg", self.azimuth_deg, 0.0, 360.0)?;
        PlantConfigError::check_range("lossesPercent", self.losses_percent, 0.0, 100.0)?;
        PlantConfigError::check_range("dcAcRatio", self.dc_ac_ratio, 0.1, 10.0)?;
        PlantConfigError::check_range("inverterEfficiency", self.inverter_efficiency, 0.5, 1.0)?;
        PlantConfigError::check_range("gammaPdcPerC", self.gamma_pdc_per_c, -0.02, 0.0)?;
        PlantConfigError::check_range("albedo", self.albedo, 0.0, 1.0)?;
        match self.cell_temperature {
            CellTemperatureModel::Sapm { a, b, delta_t_c } => {
                PlantConfigError::check_range("cellTemperature.a", a, -10.0, 0.0)?;
                PlantConfigError::check_range("cellTemperature.b", b, -1.0, 0.0)?;
                PlantConfigError::check_range("cellTemperature.deltaTC", delta_t_c, 0.0, 20.0)
            }
            CellTemperatureModel::Faiman { u0, u1 } => {
                PlantConfigError::check_range("cellTemperature.u0", u0, 1.0, 100.0)?;
                PlantConfigError::check_range("cellTemperature.u1", u1, 0.0, 50.0)
            }
        }
    }

    /// Runs the PVWatts chain: Hay-Davies POA, physical IAM on the beam, cell
    /// temperature, PVWatts DC, system losses, PVWatts inverter.
    pub fn output(&self, conditions: &SolarConditions) -> PvArrayOutput {
        let orientation = Orientation::new(self.tilt_deg, self.azimuth_deg);
        let albedo = conditions.albedo.unwrap_or(self.albedo);
        let poa = orientation.hay_davies(
            &conditions.sun,
            conditions.dni,
            conditions.ghi,
            conditions.dhi,
            conditions.dni_extra_w_m2,
            albedo,
        );
        let iam = physical_iam(orientation.aoi_cosine(&conditions.sun));
        let effective_irradiance_w_m2 = poa.direct * iam + poa.diffuse();
        let temp_cell_c = self.cell_temperature.cell_temperature_c(
            poa.global(),
            conditions.temp_air_c,
            conditions.wind_speed_10m_ms,
        );
        let dc_kw = pvwatts::dc_power_kw(
            effective_irradiance_w_m2,
            temp_cell_c,
            self.capacity_kw,
            self.gamma_pdc_per_c,
        ) * (1.0 - self.losses_percent / 100.0);
        let ac_kw =
            pvwatts::inverter_ac_kw(dc_kw, self.ac_nameplate_kw(), self.inverter_efficiency);
        PvArrayOutput {
            poa,
            effective_irradiance_w_m2,
            temp_cell_c,
            dc_kw,
            ac_kw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noon(ghi: f64, dni: f64, dhi: f64) -> SolarConditions {
        SolarConditions {
            sun: SolarPosition {
                apparent_zenith_deg: 30.0,
                azimuth_deg: 180.0,
            },
            ghi,
            dni,
            dhi,
            dni_extra_w_m2: 1367.0,
            temp_air_c: 20.0,
            wind_speed_10m_ms: 2.0,
            albedo: None,
        }
    }

    #[test]
    fn clips_at_the_ac_nameplate() {
        let array = PvArray {
            dc_ac_ratio: 1.5,
            ..PvArray::new(1000.0, 30.0, 180.0)
        };
        let out = array.output(&noon(1000.0, 950.0, 100.0));
        assert!((out.ac_kw - 1000.0 / 1.5).abs() < 1e-9, "{out:?}");
    }

    #[test]
    fn nothing_in_the_dark() {
        let array = PvArray::new(1000.0, 30.0, 180.0);
        let night = SolarConditions {
            sun: SolarPosition {
                apparent_zenith_deg: 120.0,
                azimuth_deg: 0.0,
            },
            ..noon(0.0, 0.0, 0.0)
        };
        assert_eq!(array.output(&night).ac_kw, 0.0);
    }

    #[test]
    fn rejects_nonsense() {
        assert!(PvArray::new(-1.0, 30.0, 180.0).validate().is_err());
        assert!(PvArray::new(10.0, f64::NAN, 180.0).validate().is_err());
        assert!(
            PvArray::new(10.0, 30.0, 180.0)
                .with_losses_percent(120.0)
                .validate()
                .is_err()
        );
        assert!(PvArray::new(10.0, 30.0, 180.0).validate().is_ok());
    }
}
