//! The canonical timestamp text of records, `2026-11-26T09:00:00.250000Z` (RFC 3339, UTC,
//! microseconds): written and read by hand because every row is formatted once or twice and
//! parsed several times (timestamp stage, validate, partition, Parquet). UTC text with any
//! precision is read the same way; every other form goes through chrono, and results are
//! exactly chrono's.

use chrono::{DateTime, SecondsFormat, Utc};

/// `t` as canonical text; the same as `to_rfc3339_opts(SecondsFormat::Micros, true)`.
pub(crate) fn format(t: DateTime<Utc>) -> String {
    let (secs, nanos) = (t.timestamp(), t.timestamp_subsec_nanos());
    // 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z; other years chrono writes with a sign or
    // more digits, and it writes leap seconds.
    if !(-62_167_219_200..=253_402_300_799).contains(&secs) || nanos >= 1_000_000_000 {
        return t.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    // From the count of seconds, not chrono's calendar fields: each of those decodes the date.
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400) as u32;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, second_of_day / 3600);
    put(14, 2, second_of_day / 60 % 60);
    put(17, 2, second_of_day % 60);
    put(20, 6, nanos / 1_000);
    std::str::from_utf8(&b).expect("digits and ASCII punctuation").to_owned()
}

/// The proleptic Gregorian (year, month, day) `days` after 1970-01-01, by Howard Hinnant's
/// `civil_from_days` (eras of 400 years, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097) as u32;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (i64::from(year_of_era) + era * 400 + i64::from(month <= 2), month, day)
}

/// Parse RFC 3339 text; the same as chrono's `DateTime::parse_from_rfc3339` in UTC.
pub(crate) fn parse(s: &str) -> Option<DateTime<Utc>> {
    parse_canonical(s).or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
}

/// `YYYY-MM-DDTHH:MM:SS[.f]Z` with 0 to 9 fraction digits (the canonical form among them);
/// `None` for anything else, including second 60, which is left to chrono.
fn parse_canonical(s: &str) -> Option<DateTime<Utc>> {
    let (days, second, nanos) = canonical_fields(s.as_bytes())?;
    DateTime::from_timestamp(days * 86_400 + i64::from(second), nanos)
}

/// What [`parse`] gives for canonical text, in microseconds since the epoch (the fraction
/// truncated, as chrono's `timestamp_micros`), without building a date: the decoder reads one
/// or more per row. `None` for any other text.
pub(crate) fn canonical_micros(s: &[u8]) -> Option<i64> {
    let (days, second, nanos) = canonical_fields(s)?;
    Some((days * 86_400 + i64::from(second)) * 1_000_000 + i64::from(nanos / 1_000))
}

/// Canonical text's days since 1970-01-01, second of the day and nanoseconds, each checked
/// (months, days of the month with leap years, hours, minutes, seconds below 60).
fn canonical_fields(s: &[u8]) -> Option<(i64, u32, u32)> {
    let (head, rest) = s.split_first_chunk::<19>()?;
    let (z, frac) = rest.split_last()?;
    if head[4] != b'-' || head[7] != b'-' || head[10] != b'T' || head[13] != b':' || head[16] != b':' || *z != b'Z' {
        return None;
    }
    let digit = |c: u8| c.wrapping_sub(b'0').lt(&10).then(|| u32::from(c - b'0'));
    let two = |at: usize| Some(digit(head[at])? * 10 + digit(head[at + 1])?);
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = digits.iter().try_fold(0, |n, &c| Some(n * 10 + digit(c)?))?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some((days_from_civil(year, month, day), hour * 3_600 + minute * 60 + second, nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date, by Howard Hinnant's `days_from_civil`
/// (the inverse of [`civil_from_days`]).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let day_of_year = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::sample::Rng;
    use chrono::NaiveDate;

    fn chrono_parse(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The edges of the hand-written range and of the calendar, against chrono.
    #[test]
    fn formats_edges_as_chrono() {
        let edges = [
            -62_167_219_201,
            -62_167_219_200,
            -62_135_596_801,
            -1,
            0,
            86_399,
            86_400,
            951_782_400,
            951_868_800,
            -2_203_891_200,
            4_107_542_400,
            253_402_300_799,
            253_402_300_800,
        ];
        for secs in edges {
            let t = DateTime::from_timestamp(secs, 999_999_999).unwrap();
            assert_eq!(format(t), t.to_rfc3339_opts(SecondsFormat::Micros, true), "{secs}");
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert_eq!(format(leap.and_utc()), "2016-12-31T23:59:60.500000Z");
    }

    #[test]
    fn same_as_chrono_on_many_instants() {
        let mut r = Rng::new(3);
        for _ in 0..20_000 {
            // 0001-01-01 to 9999-12-31, any nanosecond.
            let secs = -62_135_596_800 + r.below(315_537_897_600) as i64;
            let t = DateTime::from_timestamp(secs, r.below(1_000_000_000) as u32).unwrap();
            let text = format(t);
            assert_eq!(text, t.to_rfc3339_opts(SecondsFormat::Micros, true));
            assert_eq!(parse(&text), chrono_parse(&text), "{text}");
            assert_eq!(canonical_micros(text.as_bytes()), chrono_parse(&text).map(|t| t.timestamp_micros()));
            // Other precisions, as producers write them (`…T09:00:00.037Z`).
            let digits = r.below(11) as usize;
            let short = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
            let short = match digits {
                0 => format!("{}Z", &short[..19]),
                10 => format!("{}0Z", &short[..29]),
                d => format!("{}Z", &short[..20 + d]),
            };
            assert_eq!(parse(&short), chrono_parse(&short), "{short}");
            // Up to nine digits read here; more are left to chrono.
            let want = chrono_parse(&short).map(|t| t.timestamp_micros()).filter(|_| digits < 10);
            assert_eq!(canonical_micros(short.as_bytes()), want, "{short}");
        }
    }

    /// Month ends in leap and common years (by 4, 100 and 400) and the edges of each time field
    /// are checked as chrono checks them.
    #[test]
    fn canonical_dates_and_times_are_checked_as_chrono_does() {
        let micros = |s: &str| chrono_parse(s).map(|t| t.timestamp_micros());
        for year in [0, 1, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    let s = format!("{year:04}-{month:02}-{day:02}T23:59:59.999999Z");
                    assert_eq!(canonical_micros(s.as_bytes()), micros(&s), "{s}");
                    assert_eq!(parse(&s), chrono_parse(&s), "{s}");
                }
            }
        }
        for time in ["00:00:00", "23:59:59", "24:00:00", "23:60:00", "9:00:00Z", "09:0a:00"] {
            let s = format!("1969-12-31T{time}.5Z");
            assert_eq!(canonical_micros(s.as_bytes()), micros(&s), "{s}");
        }
        // Any byte of the date and time replaced: read as chrono reads it, or left to chrono.
        let good = b"2024-02-29T23:59:58.25Z";
        for at in 0..good.len() {
            for c in [b'/', b':', b'-', b'T', b' ', b'0', b'9', b'a', 0x7f, 0xb0] {
                let mut s = good.to_vec();
                s[at] = c;
                let text = String::from_utf8_lossy(&s);
                let mine = canonical_micros(&s);
                assert!(mine.is_none() || mine == micros(&text), "{text}");
                assert_eq!(parse(&text), chrono_parse(&text), "{text}");
            }
        }
        // A leap second is left to chrono.
        assert_eq!(canonical_micros(b"1969-12-31T23:59:60.5Z"), None);
    }

    #[test]
    fn other_forms_and_bad_text_are_chrono_s() {
        for s in [
            "2026-11-26T09:00:00Z",
            "2026-11-26T10:00:00.25+01:00",
            "2026-11-26t09:00:00.250000z",
            "2016-12-31T23:59:60.500000Z",
            "2026-02-30T09:00:00.000000Z",
            "2026-11-26T24:00:00.000000Z",
            "2026-11-26T09:00:00.00000xZ",
            "2026-11-26T09:00:00.Z",
            "2026-11-26T09:00:00,5Z",
            "2026-11-26T09:00:00.1234567891Z",
            "2026-11-26T09:00:0aZ",
            "+2026-11-26T09:00:00.00000Z",
            "yesterday",
            "",
        ] {
            assert_eq!(parse(s), chrono_parse(s), "{s}");
        }
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap(); // year 10000
        assert_eq!(format(far), far.to_rfc3339_opts(SecondsFormat::Micros, true));
    }
}
