//! A site's renewable supply over time, as the placement engine sees it. Pure.
//!
//! Static sites are computed from their spec directly, by UTC hour. Every other provider
//! is read from the forecast the EnergySite controller keeps in `status.forecast` (hourly,
//! or in shorter steps under `--time-scale`); a site without one has no renewable supply
//! (the conservative assumption).

use verdant_core::placement::SupplyPoint;
use verdant_crds::{EnergySite, ForecastProvider, StaticForecast};

/// Hours of forecast the engine gets.
pub const HORIZON_HOURS: i64 = 48;

/// Supply points from the start of the current step (the UTC hour), for 48 steps.
pub fn site_supply(site: &EnergySite, now_s: i64) -> Vec<SupplyPoint> {
    let forecast = site.spec.forecast.as_ref();
    if let Some(static_forecast) = forecast
        .filter(|f| f.provider == ForecastProvider::Static)
        .and_then(|f| f.r#static.as_ref())
    {
        return static_supply(static_forecast, now_s);
    }
    let points = site
        .status
        .as_ref()
        .map(|s| s.forecast.as_slice())
        .unwrap_or_default();
    let mut supply: Vec<SupplyPoint> = points
        .iter()
        .map(|p| SupplyPoint {
            start_s: p.time.0.as_second(),
            kw: (p.solar_kw + p.wind_kw).max(0.0),
        })
        .collect();
    supply.sort_by_key(|p| p.start_s);
    // Points are an hour apart, or less when the operator's clock is sped up.
    let step_s = match supply.as_slice() {
        [first, second, ..] => (second.start_s - first.start_s).max(1),
        _ => 3600,
    };
    supply.retain(|p| p.start_s + step_s > now_s);
    // The engine reads the first point as "now": it must not start in the future.
    if let Some(first) = supply.first_mut() {
        first.start_s = first.start_s.min(now_s);
    }
    supply
}

/// A Static provider's supply: a constant, or the kW of each UTC hour, repeated daily.
pub fn static_supply(forecast: &StaticForecast, now_s: i64) -> Vec<SupplyPoint> {
    let hour_start = now_s.div_euclid(3600) * 3600;
    (0..HORIZON_HOURS)
        .map(|h| {
            let start_s = hour_start + h * 3600;
            let hour_of_day = start_s.div_euclid(3600).rem_euclid(24) as usize;
            let kw = match (&forecast.hourly_kw, forecast.constant_kw) {
                (Some(hourly), _) => hourly.get(hour_of_day).copied().unwrap_or(0.0),
                (None, Some(constant)) => constant,
                (None, None) => 0.0,
            };
            SupplyPoint {
                start_s,
                kw: kw.max(0.0),
            }
        })
        .collect()
}

/// Renewable kW now, from the supply points.
pub fn supply_now_kw(supply: &[SupplyPoint], now_s: i64) -> f64 {
    supply
        .iter()
        .take_while(|p| p.start_s <= now_s)
        .last()
        .map_or(0.0, |p| p.kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_profile_follows_utc_hours_for_48_hours() {
        let hourly: Vec<f64> = (0..24).map(f64::from).collect();
        let forecast = StaticForecast {
            constant_kw: None,
            hourly_kw: Some(hourly),
        };
        // 2026-01-01T10:30:00Z
        let now = 1_767_263_400;
        let supply = static_supply(&forecast, now);
        assert_eq!(supply.len(), 48);
        assert_eq!(supply[0].start_s, now - 1800);
        assert_eq!(supply[0].kw, 10.0);
        assert_eq!(supply[14].kw, 0.0, "midnight UTC");
        assert_eq!(supply[47].kw, 9.0);
        assert_eq!(supply_now_kw(&supply, now), 10.0);
    }

    #[test]
    fn constant_supply_is_flat() {
        let forecast = StaticForecast {
            constant_kw: Some(250.0),
            hourly_kw: None,
        };
        let supply = static_supply(&forecast, 0);
        assert!(supply.iter().all(|p| p.kw == 250.0));
    }
}
