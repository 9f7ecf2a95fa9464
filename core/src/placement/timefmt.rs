//! Timestamps, durations and kW figures for decision messages, without a date-time
//! dependency.

/// `HH:MM UTC` when `t_s` falls on the same UTC day as `now_s`, else `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(t_s: i64, now_s: i64) -> String {
    let (days, secs) = (t_s.div_euclid(86_400), t_s.rem_euclid(86_400));
    let clock = format!("{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60);
    if days == now_s.div_euclid(86_400) {
        clock
    } else {
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02} {clock}")
    }
}

/// `2h30m`, `45m`, `1d4h`: coarse, for messages.
pub fn format_duration(d_s: i64) -> String {
    let d_s = d_s.max(0);
    let (days, hours, minutes) = (d_s / 86_400, d_s % 86_400 / 3600, d_s % 3600 / 60);
    match (days, hours) {
        (0, 0) if minutes == 0 && d_s > 0 => format!("{d_s}s"),
        (0, 0) => format!("{minutes}m"),
        (0, _) if minutes == 0 => format!("{hours}h"),
        (0, _) => format!("{hours}h{minutes:02}m"),
        _ => format!("{days}d{hours}h"),
    }
}

/// `12.4` (kW with one decimal) for messages.
pub(super) fn kw(v: f64) -> String {
    format!("{v:.1}")
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn same_day_shows_clock_only_other_days_show_date() {
        let now = 1_767_268_800; // 2026-01-01 12:00 UTC
        assert_eq!(format_utc(now + 3600 + 300, now), "13:05 UTC");
        assert_eq!(format_utc(now + 13 * 3600, now), "2026-01-02 01:00 UTC");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(format_duration(9000), "2h30m");
        assert_eq!(format_duration(3600), "1h");
        assert_eq!(format_duration(2700), "45m");
        assert_eq!(format_duration(30), "30s");
        assert_eq!(format_duration(100_000), "1d3h");
    }
}
