//! PV cell temperature from irradiance, air temperature and wind.

use serde::{Deserialize, Serialize};

/// How hot the cells run. Wind speed is the 10 m value for both models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "camelCase")]
pub enum CellTemperatureModel {
    /// Sandia Array Performance Model (King et al. 2004):
    /// T_m = E·exp(a + b·WS) + T_air; T_c = T_m + E/1000·ΔT.
    #[serde(rename_all = "camelCase")]
    Sapm { a: f64, b: f64, delta_t_c: f64 },
    /// Faiman (2008): T_c = T_air + E / (u0 + u1·WS).
    #[serde(rename_all = "camelCase")]
    Faiman { u0: f64, u1: f64 },
}

impl CellTemperatureModel {
    /// SAPM glass/glass module on an open rack: ground-mounted utility arrays.
    pub const SAPM_OPEN_RACK_GLASS_GLASS: Self = Self::Sapm {
        a: -3.47,
        b: -0.0594,
        delta_t_c: 3.0,
    };
    /// SAPM glass/polymer module on an open rack.
    pub const SAPM_OPEN_RACK_GLASS_POLYMER: Self = Self::Sapm {
        a: -3.56,
        b: -0.075,
        delta_t_c: 3.0,
    };
    /// Faiman with pvlib's default coefficients (u0 = 25, u1 = 6.84).
    pub const FAIMAN_DEFAULT: Self = Self::Faiman { u0: 25.0, u1: 6.84 };

    pub fn cell_temperature_c(
        &self,
        poa_global_w_m2: f64,
        temp_air_c: f64,
        wind_speed_10m_ms: f64,
    ) -> f64 {
        match *self {
            Self::Sapm { a, b, delta_t_c } => {
                let module_c = poa_global_w_m2 * (a + b * wind_speed_10m_ms).exp() + temp_air_c;
                module_c + poa_global_w_m2 / 1000.0 * delta_t_c
            }
            Self::Faiman { u0, u1 } => temp_air_c + poa_global_w_m2 / (u0 + u1 * wind_speed_10m_ms),
        }
    }
}

impl Default for CellTemperatureModel {
    fn default() -> Self {
        Self::SAPM_OPEN_RACK_GLASS_GLASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pvlib() {
        // pvlib.temperature.sapm_cell(800, 25, 3, -3.47, -0.0594, 3); faiman(800, 25, 3)
        let sapm =
            CellTemperatureModel::SAPM_OPEN_RACK_GLASS_GLASS.cell_temperature_c(800.0, 25.0, 3.0);
        let faiman = CellTemperatureModel::FAIMAN_DEFAULT.cell_temperature_c(800.0, 25.0, 3.0);
        assert!((sapm - 48.230_363_95).abs() < 1e-6, "{sapm}");
        assert!((faiman - 42.574_692_44).abs() < 1e-6, "{faiman}");
    }
}
