//! UTC calendar arithmetic on Unix seconds, for aligning weather years by date.

/// Seconds in an hour.
pub const HOUR_S: i64 = 3600;
/// Seconds in a day.
pub const DAY_S: i64 = 86_400;

/// `(year, month 1..=12, day 1..=31)` of the UTC day containing `time_s`.
pub fn utc_date(time_s: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = time_s.div_euclid(DAY_S) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds of 00:00 UTC on a civil date.
pub fn utc_midnight_s(year: i64, month: u32, day: u32) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * DAY_S
}

/// Hour of the UTC day, 0..=23.
pub fn utc_hour(time_s: i64) -> u32 {
    (time_s.rem_euclid(DAY_S) / HOUR_S) as u32
}

/// `YYYY-MM-DD HH:MM` UTC, for reports.
pub fn format_utc(time_s: i64) -> String {
    let (y, m, d) = utc_date(time_s);
    let minute = time_s.rem_euclid(HOUR_S) / 60;
    format!("{y:04}-{m:02}-{d:02} {:02}:{minute:02}", utc_hour(time_s))
}

/// `YYYY-MM-DD` UTC.
pub fn format_date(time_s: i64) -> String {
    let (y, m, d) = utc_date(time_s);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(utc_midnight_s(1970, 1, 1), 0);
        assert_eq!(utc_midnight_s(2019, 6, 1), 1_559_347_200);
        assert_eq!(utc_date(1_559_347_200 + 3 * 3600), (2019, 6, 1));
        assert_eq!(utc_date(utc_midnight_s(2020, 2, 29)), (2020, 2, 29));
        assert_eq!(utc_date(-1), (1969, 12, 31));
        assert_eq!(
            format_utc(1_559_347_200 + 13 * 3600 + 5 * 60),
            "2019-06-01 13:05"
        );
        for day in (0..800).map(|d| utc_midnight_s(2019, 1, 1) + d * DAY_S) {
            let (y, m, d) = utc_date(day);
            assert_eq!(utc_midnight_s(y, m, d), day);
        }
    }
}
