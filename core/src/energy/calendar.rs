//! Civil (proleptic Gregorian) dates and Unix seconds, without a time-zone database.
//!
//! Weather files only ever carry fixed UTC offsets, so nothing here needs tz rules.

pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    // Both casts are bounded by construction: day in 1..=31, month in 1..=12.
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Day of the year (1 = January 1st) of an instant, in UTC.
pub(crate) fn utc_day_of_year(time_s: i64) -> u32 {
    let days = time_s.div_euclid(SECONDS_PER_DAY);
    let (year, _, _) = civil_from_days(days);
    // At most 366, so the cast cannot truncate.
    (days - days_from_civil(year, 1, 1) + 1) as u32
}

/// The year with its elapsed fraction, e.g. 2024.5 in early July 2024 (for ΔT).
pub(crate) fn decimal_year(time_s: i64) -> f64 {
    let days = time_s.div_euclid(SECONDS_PER_DAY);
    let (year, _, _) = civil_from_days(days);
    let start = days_from_civil(year, 1, 1) * SECONDS_PER_DAY;
    let length = if is_leap_year(year) { 366 } else { 365 } * SECONDS_PER_DAY;
    year as f64 + (time_s - start) as f64 / length as f64
}

/// A wall-clock reading, validated field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl CivilTime {
    /// Checks ranges; `hour` may be 24 only at 24:00:00 (TMY files use it for midnight).
    pub fn new(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<Self> {
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && (hour < 24 || (hour == 24 && minute == 0 && second == 0))
            && minute < 60
            && second < 60
            && (-9999..=9999).contains(&year);
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Unix seconds of this reading taken at a fixed UTC offset.
    pub fn to_unix_s(self, utc_offset_s: i64) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - utc_offset_s
    }
}

/// Parses `YYYY-MM-DD[T| ]HH:MM[:SS[.fff]][Z|±HH[:MM]]` to Unix seconds.
///
/// RFC 3339 plus the spellings pandas writes (space separator, no offset); a missing
/// offset means UTC. Fractions of a second are truncated: weather is never finer.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 16 || !text.is_ascii() {
        return None;
    }
    let year = parse_digits(&text[0..4])?;
    let month = parse_digits(&text[5..7])?;
    let day = parse_digits(&text[8..10])?;
    let hour = parse_digits(&text[11..13])?;
    let minute = parse_digits(&text[14..16])?;
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
    {
        return None;
    }
    let mut rest = &text[16..];
    let mut second = 0;
    if let Some(after_colon) = rest.strip_prefix(':') {
        second = parse_digits(after_colon.get(0..2)?)?;
        rest = &after_colon[2..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &fraction[digits..];
        }
    }
    let offset_s = parse_utc_offset(rest)?;
    let civil = CivilTime::new(i64::from(year), month, day, hour, minute, second)?;
    if civil.hour == 24 {
        return None;
    }
    Some(civil.to_unix_s(offset_s))
}

fn parse_utc_offset(text: &str) -> Option<i64> {
    match text {
        "" | "Z" | "z" => return Some(0),
        _ => {}
    }
    let sign = match text.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    let (hours, minutes) = match body.len() {
        2 => (parse_digits(body)?, 0),
        4 => (parse_digits(&body[0..2])?, parse_digits(&body[2..4])?),
        5 if body.as_bytes()[2] == b':' => (parse_digits(&body[0..2])?, parse_digits(&body[3..5])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60))
}

/// An all-ASCII-digit field as a number (no sign, no spaces).
pub(crate) fn parse_digits(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
#[cfg(test)]
pub(crate) fn format_utc(time_s: i64) -> String {
    let days = time_s.div_euclid(SECONDS_PER_DAY);
    let seconds = time_s.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_across_eras() {
        for days in [-800_000, -1, 0, 1, 10_957, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn timestamps_in_the_spellings_weather_files_use() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2010-01-01 00:00:00+01:00"),
            Some(1_262_300_400)
        );
        assert_eq!(
            parse_timestamp("2010-01-01T00:00+0100"),
            Some(1_262_300_400)
        );
        assert_eq!(
            parse_timestamp("2010-01-01T00:00:00.250-05"),
            Some(1_262_322_000)
        );
        assert_eq!(parse_timestamp("2010-01-01 00:00"), Some(1_262_304_000));
        for bad in [
            "",
            "2010-13-01T00:00Z",
            "2010-02-30T00:00Z",
            "2010-01-01T24:00Z",
            "2010-01-01T00:00+25:00",
            "2010/01/01 00:00",
            "2010-01-01T00:00:00.Z",
            "2010-01-01T00:00:00 garbage",
            "ééééééééééééééééé",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn day_of_year_and_decimal_year() {
        assert_eq!(utc_day_of_year(0), 1);
        assert_eq!(
            utc_day_of_year(days_from_civil(2024, 12, 31) * SECONDS_PER_DAY + 3600),
            366
        );
        let mid = decimal_year(days_from_civil(2023, 7, 2) * SECONDS_PER_DAY + 12 * 3600);
        assert!((mid - 2023.5).abs() < 0.001, "{mid}");
        assert_eq!(format_utc(1_262_300_400), "2009-12-31T23:00:00Z");
    }
}
