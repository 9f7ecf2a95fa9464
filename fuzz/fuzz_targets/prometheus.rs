//! The Prometheus instant-query parser: no panic; a measurement is a finite,
//! non-negative power at a representable time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdant_core::energy::forecast::prometheus::parse;

const NOW_S: i64 = 1_795_910_400;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(measured) = parse(body, "fuzz", NOW_S) {
        assert!(
            measured.total_kw.is_finite() && measured.total_kw >= 0.0,
            "{} kW",
            measured.total_kw
        );
        // Ages are computed from it (now − at): it must be a real time.
        assert!(
            jiff::Timestamp::from_second(measured.at_s).is_ok(),
            "at {}",
            measured.at_s
        );
    }
});
