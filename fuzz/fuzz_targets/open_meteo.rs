//! The Open-Meteo forecast parser: no panic; parsed records stay inside the ranges the
//! parser checks (irradiance, wind, temperature, pressure).
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdant_core::energy::forecast::open_meteo::{Needs, parse};

/// The seed answers' hours lie around this instant.
const NOW_S: i64 = 1_795_910_400;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    for (irradiance, wind) in [(true, false), (false, true), (true, true)] {
        let Ok(records) = parse(body, "fuzz", Needs { irradiance, wind }, NOW_S) else {
            continue;
        };
        for r in records {
            for v in [r.ghi, r.dni, r.dhi].into_iter().flatten() {
                assert!((0.0..=2000.0).contains(&v), "irradiance {v}");
            }
            for (_, v) in &r.wind_speeds {
                assert!((0.0..=120.0).contains(v), "wind {v}");
            }
            if let Some(t) = r.temp_air_c {
                assert!((-100.0..=70.0).contains(&t), "temperature {t}");
            }
            if let Some(p) = r.pressure_pa {
                assert!((30_000.0..=110_000.0).contains(&p), "pressure {p}");
            }
        }
    }
});
