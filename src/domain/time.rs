//! Time stamps: stored as UTC without a zone, shown as RFC 3339.

/// Time stamps are stored as UTC without a zone and shown as RFC 3339.
pub type Timestamp = chrono::NaiveDateTime;

pub fn now() -> Timestamp {
    chrono::Utc::now().naive_utc()
}

/// `2026-11-28T09:30:00.000000Z`. Written digit by digit: exports format
/// millions of these, and chrono's formatter parses its pattern every time.
pub fn rfc3339(t: &Timestamp) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        // Far years and leap seconds: rare enough for the slow path.
        return t
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    let mut s = String::with_capacity(27);
    let mut push = |n: u32, width: u32, then: char| {
        for p in (0..width).rev() {
            s.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
        }
        s.push(then);
    };
    push(year as u32, 4, '-');
    push(t.month(), 2, '-');
    push(t.day(), 2, 'T');
    push(t.hour(), 2, ':');
    push(t.minute(), 2, ':');
    push(t.second(), 2, '.');
    push(t.nanosecond() / 1000, 6, 'Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_chrono() {
        for text in [
            "2026-11-28T09:30:00.000000Z",
            "2026-01-02T03:04:05.678901Z",
            "1999-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00.000001Z",
        ] {
            let t = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .naive_utc();
            assert_eq!(rfc3339(&t), text);
            assert_eq!(
                rfc3339(&t),
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
        }
        let far = chrono::NaiveDate::from_ymd_opt(12345, 6, 7)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap();
        assert!(rfc3339(&far).contains("12345"));
    }
}
