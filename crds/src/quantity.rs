//! Kubernetes resource quantities read as whole counts (`nvidia.com/gpu: "8"`).

/// The whole number a quantity such as `8`, `8.0`, `1k`, `2e3`, `4000m` or `1Ki` stands
/// for; `None` when it is negative, fractional, malformed or beyond `u32`. Never panics.
pub fn gpu_count(quantity: &str) -> Option<u32> {
    let text = quantity.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    // 10^38 fits u128: more digits than that cannot make a u32 count anyway.
    if whole.len() + fraction.len() > 38 {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let mut denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let mut numerator = digits;
    let (multiply, divide) = suffix_factor(suffix)?;
    numerator = numerator.checked_mul(multiply)?;
    denominator = denominator.checked_mul(divide)?;
    if !numerator.is_multiple_of(denominator) {
        return None;
    }
    u32::try_from(numerator / denominator).ok()
}

/// The factor of a quantity suffix as (multiply, divide).
fn suffix_factor(suffix: &str) -> Option<(u128, u128)> {
    let binary = |shift: u32| Some((1u128 << shift, 1));
    let decimal = |exponent: i32| {
        let power = 10u128.checked_pow(exponent.unsigned_abs())?;
        Some(if exponent >= 0 {
            (power, 1)
        } else {
            (1, power)
        })
    };
    match suffix {
        "" => Some((1, 1)),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let exponent: i32 = exponent.parse().ok()?;
            if exponent.abs() > 30 {
                return None;
            }
            decimal(exponent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gpu_count;

    #[test]
    fn whole_counts_in_every_notation() {
        for (text, count) in [
            ("8", Some(8)),
            (" 8 ", Some(8)),
            ("+8", Some(8)),
            ("8.0", Some(8)),
            ("1k", Some(1000)),
            ("2e3", Some(2000)),
            ("2E0", Some(2)),
            ("4000m", Some(4)),
            ("1Ki", Some(1024)),
            ("0", Some(0)),
            ("4294967295", Some(u32::MAX)),
        ] {
            assert_eq!(gpu_count(text), count, "{text}");
        }
    }

    #[test]
    fn anything_else_is_none() {
        for text in [
            "",
            "-1",
            "1.5",
            "500m",
            "4294967296",
            "1E",
            "1e-1",
            "1e99",
            "8 GPUs",
            ".",
            "1..2",
            "1Ei",
            "99999999999999999999999999999999999999999",
            "1Xi",
            "e3",
        ] {
            assert_eq!(gpu_count(text), None, "{text}");
        }
    }
}
