//! NREL PVWatts v5 DC, loss and inverter models (Dobos 2014), as in pvlib.

/// PVWatts' default temperature coefficient of power (per °C), standard modules.
pub const GAMMA_PDC_PER_C: f64 = -0.004;
/// PVWatts' nominal inverter efficiency.
pub const ETA_INV_NOM: f64 = 0.96;
/// Reference efficiency the PVWatts inverter curve was fitted at.
const ETA_INV_REF: f64 = 0.9637;

/// DC output of an array of nameplate `pdc0_kw` (at 1000 W/m², 25 °C).
pub fn dc_power_kw(
    effective_irradiance_w_m2: f64,
    temp_cell_c: f64,
    pdc0_kw: f64,
    gamma_pdc_per_c: f64,
) -> f64 {
    effective_irradiance_w_m2 / 1000.0 * pdc0_kw * (1.0 + gamma_pdc_per_c * (temp_cell_c - 25.0))
}

/// AC output of a PVWatts inverter with AC nameplate `pac0_kw`: part-load efficiency
/// curve, clipped at the nameplate and never negative (no night-time draw modelled).
pub fn inverter_ac_kw(pdc_kw: f64, pac0_kw: f64, eta_inv_nom: f64) -> f64 {
    // NaN counts as nothing: a broken input must not become a power reading.
    if pdc_kw.is_nan() || pdc_kw <= 0.0 || pac0_kw <= 0.0 {
        return 0.0;
    }
    // pvlib sizes the curve by the inverter's DC input rating.
    let pdc0_kw = pac0_kw / eta_inv_nom;
    let zeta = pdc_kw / pdc0_kw;
    let efficiency = eta_inv_nom / ETA_INV_REF * (-0.0162 * zeta - 0.0059 / zeta + 0.9858);
    (efficiency * pdc_kw).clamp(0.0, pac0_kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverter_matches_pvlib() {
        // pvlib.inverter.pvwatts([1, 100, 500, 900], pdc0=868.0556) with pac0 = 833.333
        for (pdc, pac) in [
            (0.0, 0.0),
            (1.0, 0.0),
            (100.0, 92.913_743),
            (500.0, 481.258_024),
            (900.0, 833.333_333),
        ] {
            let got = inverter_ac_kw(pdc, 1000.0 / 1.2, ETA_INV_NOM);
            assert!((got - pac).abs() < 1e-3, "{pdc}: {got}");
        }
    }

    #[test]
    fn dc_falls_with_heat() {
        assert_eq!(dc_power_kw(1000.0, 25.0, 500.0, GAMMA_PDC_PER_C), 500.0);
        assert!((dc_power_kw(800.0, 50.0, 500.0, GAMMA_PDC_PER_C) - 360.0).abs() < 1e-9);
    }
}
