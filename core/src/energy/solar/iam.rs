//! Incidence angle modifier: Fresnel reflection and absorption in the cover glass
//! (De Soto et al. 2006; pvlib's `iam.physical`, the model PVWatts-style chains use).

/// Refractive index of the cover glass.
const GLASS_INDEX: f64 = 1.526;
/// Glazing extinction coefficient (1/m) times glazing thickness (m).
const EXTINCTION_TIMES_THICKNESS: f64 = 4.0 * 0.002;

/// Fraction of beam irradiance transmitted at this incidence, relative to normal incidence.
pub fn physical_iam(aoi_cosine: f64) -> f64 {
    let cos_incidence = aoi_cosine.clamp(0.0, 1.0);
    if cos_incidence == 0.0 {
        return 0.0;
    }
    let sin_incidence = (1.0 - cos_incidence * cos_incidence).sqrt();
    let sin_refracted = sin_incidence / GLASS_INDEX;
    let cos_refracted = (1.0 - sin_refracted * sin_refracted).sqrt();

    let reflect_s = ((cos_incidence - GLASS_INDEX * cos_refracted)
        / (cos_incidence + GLASS_INDEX * cos_refracted))
        .powi(2);
    let reflect_p = ((cos_refracted - GLASS_INDEX * cos_incidence)
        / (cos_refracted + GLASS_INDEX * cos_incidence))
        .powi(2);
    let reflect_normal = ((1.0 - GLASS_INDEX) / (1.0 + GLASS_INDEX)).powi(2);

    let absorbed = (-EXTINCTION_TIMES_THICKNESS / cos_refracted).exp();
    let transmitted = (2.0 - reflect_s - reflect_p) / 2.0 * absorbed;
    let transmitted_normal = (1.0 - reflect_normal) * (-EXTINCTION_TIMES_THICKNESS).exp();
    transmitted / transmitted_normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pvlib() {
        // pvlib.iam.physical([0, 30, 60, 80, 89.9, 120])
        for (aoi_deg, iam) in [
            (0.0, 1.0),
            (30.0, 0.997_886_863),
            (60.0, 0.946_002_914),
            (80.0, 0.634_116_693),
            (89.9, 0.010_448_711),
            (120.0, 0.0),
        ] {
            let got = physical_iam(f64::to_radians(aoi_deg).cos());
            assert!((got - iam).abs() < 1e-6, "{aoi_deg}: {got}");
        }
    }
}
