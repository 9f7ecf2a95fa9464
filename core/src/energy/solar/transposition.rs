//! Plane-of-array irradiance: Hay & Davies (1980) sky diffuse plus isotropic ground
//! reflection, as pvlib's `get_total_irradiance(model="haydavies")`.

use super::position::SolarPosition;

/// Irradiance on a tilted plane, W/m².
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoaIrradiance {
    pub direct: f64,
    pub sky_diffuse: f64,
    pub ground_diffuse: f64,
}

impl PoaIrradiance {
    pub fn diffuse(&self) -> f64 {
        self.sky_diffuse + self.ground_diffuse
    }

    pub fn global(&self) -> f64 {
        self.direct + self.diffuse()
    }
}

/// A plane's orientation with its trigonometry done once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orientation {
    pub tilt_deg: f64,
    pub azimuth_deg: f64,
    cos_tilt: f64,
    sin_tilt: f64,
}

impl Orientation {
    /// `tilt_deg` from horizontal; `azimuth_deg` clockwise from north (180 = facing south).
    pub fn new(tilt_deg: f64, azimuth_deg: f64) -> Self {
        let (sin_tilt, cos_tilt) = tilt_deg.to_radians().sin_cos();
        Self {
            tilt_deg,
            azimuth_deg,
            cos_tilt,
            sin_tilt,
        }
    }

    /// Cosine of the angle of incidence of the beam on the plane, in [−1, 1].
    pub fn aoi_cosine(&self, sun: &SolarPosition) -> f64 {
        let (sin_zenith, cos_zenith) = sun.apparent_zenith_deg.to_radians().sin_cos();
        let relative_azimuth = (sun.azimuth_deg - self.azimuth_deg).to_radians().cos();
        (self.cos_tilt * cos_zenith + self.sin_tilt * sin_zenith * relative_azimuth)
            .clamp(-1.0, 1.0)
    }

    /// Hay-Davies transposition. With the sun below the horizon the beam and the
    /// circumsolar part are dropped (pvlib keeps whatever DNI says; TMY files can carry a
    /// little beam in an hour whose midpoint is just after sunset).
    pub fn hay_davies(
        &self,
        sun: &SolarPosition,
        dni: f64,
        ghi: f64,
        dhi: f64,
        dni_extra_w_m2: f64,
        albedo: f64,
    ) -> PoaIrradiance {
        let dni = if sun.is_above_horizon() {
            dni.max(0.0)
        } else {
            0.0
        };
        let dhi = dhi.max(0.0);
        let ghi = ghi.max(0.0);
        let aoi_cosine = self.aoi_cosine(sun);
        // pvlib GH 432: keep the beam ratio finite near the horizon.
        let cos_zenith = sun.apparent_zenith_deg.to_radians().cos();
        let beam_ratio = aoi_cosine.max(0.0) / cos_zenith.max(0.01745);
        let anisotropy = dni / dni_extra_w_m2;
        let isotropic = (dhi * (1.0 - anisotropy) * 0.5 * (1.0 + self.cos_tilt)).max(0.0);
        let circumsolar = (dhi * anisotropy * beam_ratio).max(0.0);
        PoaIrradiance {
            direct: (dni * aoi_cosine).max(0.0),
            sky_diffuse: isotropic + circumsolar,
            ground_diffuse: ghi * albedo * (1.0 - self.cos_tilt) * 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hay_davies_matches_pvlib() {
        // pvlib.irradiance.get_total_irradiance(25, 180, 40, 150, dni=700, ghi=650,
        //     dhi=120, dni_extra=1400, model="haydavies", albedo=0.25)
        let sun = SolarPosition {
            apparent_zenith_deg: 40.0,
            azimuth_deg: 150.0,
        };
        let poa = Orientation::new(25.0, 180.0).hay_davies(&sun, 700.0, 650.0, 120.0, 1400.0, 0.25);
        assert!((poa.direct - 650.671_784).abs() < 1e-3, "{poa:?}");
        assert!((poa.sky_diffuse - 129.994_236).abs() < 1e-3, "{poa:?}");
        assert!((poa.ground_diffuse - 7.612_492).abs() < 1e-3, "{poa:?}");
    }

    #[test]
    fn no_beam_at_night() {
        let sun = SolarPosition {
            apparent_zenith_deg: 95.0,
            azimuth_deg: 280.0,
        };
        let poa = Orientation::new(30.0, 270.0).hay_davies(&sun, 50.0, 10.0, 10.0, 1400.0, 0.25);
        assert_eq!(poa.direct, 0.0);
        assert!(poa.global() < 10.0);
    }
}
