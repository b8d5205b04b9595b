//! A timestamp column read and written without chrono's format strings.
//! diesel reads SQLite's text timestamps by trying chrono formats in turn,
//! which parses each pattern for every value (a label export reads
//! millions of them), and writes them through a format string parsed anew
//! for each value (~6 % of the writer's time storing a batch file). The
//! row types insert their timestamps through [`FastTimestamp`] with
//! `#[diesel(serialize_as = FastTimestamp)]`.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamp as SqlTimestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, FromSqlRow, AsExpression)]
#[diesel(sql_type = SqlTimestamp)]
pub struct FastTimestamp(pub Timestamp);

impl From<Timestamp> for FastTimestamp {
    fn from(t: Timestamp) -> Self {
        FastTimestamp(t)
    }
}

/// A nullable timestamp column, written as [`FastTimestamp`] writes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression)]
#[diesel(sql_type = diesel::sql_types::Nullable<SqlTimestamp>)]
pub struct FastOptionalTimestamp(pub Option<Timestamp>);

impl From<Option<Timestamp>> for FastOptionalTimestamp {
    fn from(t: Option<Timestamp>) -> Self {
        FastOptionalTimestamp(t)
    }
}

/// `YYYY-MM-DD HH:MM:SS[.fff|.ffffff|.fffffffff]`, exactly what diesel
/// writes with chrono's `%F %T%.f`, by hand; a year outside 0–9999 or a
/// leap second through chrono.
pub fn format_sqlite(t: &Timestamp) -> String {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.format("%F %T%.f").to_string();
    }
    let mut out = [0u8; 29];
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    let len = match nanos {
        0 => 19,
        n if n % 1_000_000 == 0 => {
            put(20, 3, n / 1_000_000);
            23
        }
        n if n % 1_000 == 0 => {
            put(20, 6, n / 1_000);
            26
        }
        n => {
            put(20, 9, n);
            29
        }
    };
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b' ';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    String::from_utf8(out[..len].to_vec()).expect("ASCII digits")
}

impl ToSql<SqlTimestamp, Sqlite> for FastTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(format_sqlite(&self.0));
        Ok(IsNull::No)
    }
}

impl ToSql<SqlTimestamp, Pg> for FastTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Timestamp as ToSql<SqlTimestamp, Pg>>::to_sql(&self.0, out)
    }
}

impl ToSql<diesel::sql_types::Nullable<SqlTimestamp>, Sqlite> for FastOptionalTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        match &self.0 {
            Some(t) => {
                out.set_value(format_sqlite(t));
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
}

impl ToSql<diesel::sql_types::Nullable<SqlTimestamp>, Pg> for FastOptionalTimestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        match &self.0 {
            Some(t) => <Timestamp as ToSql<SqlTimestamp, Pg>>::to_sql(t, out),
            None => Ok(IsNull::Yes),
        }
    }
}

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

    /// Written as diesel writes a chrono timestamp (`%F %T%.f`), for every
    /// length of fraction, and read back to the same instant.
    #[test]
    fn formats_as_diesel_writes_with_chrono() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 9).expect("date");
        let mut nanos = vec![0, 1, 7, 999, 1_000, 5_000, 999_000, 1_000_000, 123_000_000];
        nanos.extend([123_456_000, 123_456_789, 999_999_999, 500_000_000, 10]);
        for (h, m, sec) in [(0, 0, 0), (9, 5, 7), (23, 59, 59)] {
            for &n in &nanos {
                let t = day.and_hms_nano_opt(h, m, sec, n).expect("time");
                let text = format_sqlite(&t);
                assert_eq!(text, t.format("%F %T%.f").to_string());
                assert_eq!(parse_sqlite(&text), Some(t), "{text}");
            }
        }
        for year in [0, 9, 999, 1970, 9999, 10_000, -1] {
            let t = chrono::NaiveDate::from_ymd_opt(year, 12, 31)
                .expect("date")
                .and_hms_micro_opt(1, 2, 3, 4)
                .expect("time");
            assert_eq!(format_sqlite(&t), t.format("%F %T%.f").to_string());
        }
    }

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
