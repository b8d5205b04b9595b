//! A timestamp column read without chrono's format parser. diesel reads
//! SQLite's text timestamps by trying chrono formats in turn, which parses
//! each pattern for every value; a label export reads millions of them.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Timestamp as SqlTimestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, FromSqlRow)]
pub struct FastTimestamp(pub Timestamp);

/// `YYYY-MM-DD HH:MM:SS[.f…]` (as diesel writes them) by hand; anything
/// else through chrono.
pub fn parse_sqlite(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let mut n = 0u32;
        for &c in b.get(range)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    };
    let plain = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && b[16] == b':';
    if plain {
        let mut nanos = 0u32;
        if b.len() > 19 {
            if b[19] != b'.' || b.len() > 29 || b.len() == 20 {
                return fallback(text);
            }
            let digits = num(20..b.len())?;
            nanos = digits * 10u32.pow((29 - b.len()) as u32);
        }
        let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let time =
            chrono::NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
        return Some(date.and_time(time));
    }
    fallback(text)
}

fn fallback(text: &str) -> Option<Timestamp> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| Timestamp::parse_from_str(text, f).ok())
}

impl FromSql<SqlTimestamp, Sqlite> for FastTimestamp {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = value.read_text();
        parse_sqlite(text)
            .map(FastTimestamp)
            .ok_or_else(|| format!("invalid timestamp {text:?}").into())
    }
}

impl FromSql<SqlTimestamp, Pg> for FastTimestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Timestamp as FromSql<SqlTimestamp, Pg>>::from_sql(value).map(FastTimestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_diesel_writes_like_chrono_does() {
        for text in [
            "2026-11-28 09:30:00",
            "2026-11-28 09:30:00.5",
            "2026-11-28 09:30:00.123456",
            "2026-11-28 09:30:00.123456789",
            "2026-11-28T09:30:00.000001",
        ] {
            assert_eq!(parse_sqlite(text), fallback(text), "{text}");
            assert!(parse_sqlite(text).is_some(), "{text}");
        }
        assert_eq!(parse_sqlite("2026-13-28 09:30:00"), None);
        assert_eq!(parse_sqlite("yesterday"), None);
    }
}
