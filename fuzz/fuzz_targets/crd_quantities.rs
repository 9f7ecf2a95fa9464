//! The CRDs' durations and quantities as the operator reads them.
//!
//! - `nvidia.com/gpu` quantities ([`verdant_crds::gpu_count`]): no panic, and a count
//!   reads back as itself.
//! - Go durations (`maxDelay`, `estimatedDuration`, `refreshInterval`, `startOffset`,
//!   read by kube's `Duration`): every text the CRD schema admits (its pattern, and CEL's
//!   `duration()`, which stops at Go's 2^63 ns) parses, to the value the text says.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Go's longest duration, s (2^63 − 1 ns).
const GO_MAX_S: f64 = 9_223_372_036.854_775;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(count) = verdant_crds::gpu_count(text) {
        assert_eq!(verdant_crds::gpu_count(&count.to_string()), Some(count));
    }
    let Some(seconds) = admitted_duration_s(text) else {
        return;
    };
    let parsed: kube::core::Duration = text
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} matches the CRD pattern but does not parse: {e}"));
    let got = std::time::Duration::from(parsed).as_secs_f64();
    assert!(
        (got - seconds).abs() <= 1e-6 * seconds.max(1.0),
        "{text:?}: {got} s, expected {seconds} s"
    );
    let json = serde_json::Value::String(text.to_owned());
    assert!(serde_json::from_value::<kube::core::Duration>(json).is_ok());
});

/// The seconds of `text` when the CRD schema admits it: it matches
/// `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$` and is within Go's range.
fn admitted_duration_s(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total_s = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let mut end = digits;
        if rest[end..].starts_with('.') {
            let fraction = rest[end + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - end - 1);
            if fraction == 0 {
                return None;
            }
            end += 1 + fraction;
        }
        let value: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (unit_s, len) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .map(|(unit, s)| (*s, unit.len()))?;
        rest = &rest[len..];
        total_s += value * unit_s;
    }
    (total_s <= GO_MAX_S).then_some(total_s)
}
