//! How each backend stores an instant: SQLite as fixed-width UTC text, so that text order is time
//! order, and PostgreSQL as `timestamptz`.
//!
//! Statements written once for both backends bind the [`Bound`] and [`Instant`] wrappers; each
//! backend encodes them its way. The SQLite text is written and read by hand (no chrono formatter),
//! as it is done once per point.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use sqlx::Type;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo};

/// A window bound: whole seconds, like the bucket starts (`YYYY-MM-DDTHH:MM:SSZ` in SQLite).
pub(super) struct Bound(pub DateTime<Utc>);

/// A wall-clock instant such as `fetched_at`: microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ` in SQLite).
pub(super) struct Instant(pub DateTime<Utc>);

impl Bound {
    fn sqlite_text(&self) -> String {
        format_bucket(self.0.timestamp())
    }
}

impl Instant {
    fn sqlite_text(&self) -> String {
        format_instant(self.0)
    }
}

macro_rules! stored_time {
    ($ty:ident) => {
        impl Type<Sqlite> for $ty {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
        }

        impl<'q> Encode<'q, Sqlite> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<SqliteArgumentValue<'q>>,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, Sqlite>>::encode(self.sqlite_text(), buf)
            }
        }

        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <DateTime<Utc> as Type<Postgres>>::type_info()
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
            }

            fn size_hint(&self) -> usize {
                <DateTime<Utc> as Encode<'_, Postgres>>::size_hint(&self.0)
            }
        }
    };
}

stored_time!(Bound);
stored_time!(Instant);

/// A wall-clock instant as stored: fixed-width microseconds, so text order is time order.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A bucket start (seconds since the epoch) as `YYYY-MM-DDTHH:MM:SSZ`, without chrono's formatter:
/// this runs once per written point.
pub fn format_bucket(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Utc
            .timestamp_opt(secs, 0)
            .single()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    let put = |b: &mut [u8; 20], at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, y as u32, 4);
    put(&mut b, 5, m, 2);
    put(&mut b, 8, d, 2);
    put(&mut b, 11, (sod / 3600) as u32, 2);
    put(&mut b, 14, (sod / 60 % 60) as u32, 2);
    put(&mut b, 17, (sod % 60) as u32, 2);
    // Only ASCII digits and separators were written.
    String::from_utf8(b.to_vec()).unwrap_or_default()
}

/// The inverse of [`format_bucket`]; `None` for anything else.
pub fn parse_bucket(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m as u32, d as u32) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_text_matches_chrono_and_parses_back() {
        // Every 7,919 seconds across 1970..2100 hits every month, leap days and all hours.
        let mut s = 0i64;
        while s < 4_102_444_800 {
            let expected = Utc
                .timestamp_opt(s, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(format_bucket(s), expected);
            assert_eq!(parse_bucket(&expected), Some(s), "{expected}");
            s += 7_919;
        }
        assert_eq!(format_bucket(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_bucket("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_bucket("2024-01-01 00:00:00Z"), None);
        assert_eq!(parse_bucket("2024-01-01T00:00:00.5Z"), None);
    }

    #[test]
    fn instants_sort_as_text() {
        let a = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let b = Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap();
        assert_eq!(format_instant(a), "2023-11-14T22:13:20.000000Z");
        assert!(format_instant(a) < format_instant(b));
    }
}
