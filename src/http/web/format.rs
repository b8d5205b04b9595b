//! Numbers as the web pages show them: counts with thousands separators,
//! shares as percentages, latencies in ms or s, sizes in binary units,
//! durations and times in words a person reads at a glance. A missing
//! figure is [`NONE`].

/// What a page shows where there is no figure.
pub const NONE: &str = "–";

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// [`count`] of a signed number (negative counts do not happen; shown as 0).
pub fn count_i(n: i64) -> String {
    count(n.max(0) as u64)
}

/// A share (0–1) as a percentage with one decimal: `0.8243` → `82.4%`;
/// exactly 0 and 1 are `0%` and `100%`, a tiny share is `<0.1%` and one
/// just short of 1 is `>99.9%`, so neither is rounded into looking exact.
pub fn pct(share: f64) -> String {
    if !share.is_finite() {
        return NONE.to_string();
    }
    let p = share * 100.0;
    if p == 0.0 {
        "0%".to_string()
    } else if p == 100.0 {
        "100%".to_string()
    } else if p > 0.0 && p < 0.05 {
        "<0.1%".to_string()
    } else if p > 99.95 && p < 100.0 {
        ">99.9%".to_string()
    } else {
        format!("{p:.1}%")
    }
}

pub fn opt_pct(share: Option<f64>) -> String {
    share.map(pct).unwrap_or_else(|| NONE.to_string())
}

/// A 95% interval of shares: `86.0–94.7%`.
pub fn interval(lo: f64, hi: f64) -> String {
    format!("{:.1}–{:.1}%", lo * 100.0, hi * 100.0)
}

/// Milliseconds: `0.42 ms`, `3.4 ms`, `120 ms`, `1.50 s`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        NONE.to_string()
    } else if v < 1.0 {
        format!("{v:.2} ms")
    } else if v < 10.0 {
        format!("{v:.1} ms")
    } else if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

pub fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| NONE.to_string())
}

/// A rate such as items per minute: `0.52`, `12.3`, `1,234`.
pub fn rate(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        "0".to_string()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        count(v.round() as u64)
    }
}

/// Bytes in binary units, three significant digits: `512 B`, `12.5 MiB`,
/// `178 MiB`, `1.23 GiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.decimals$} {}", UNITS[unit])
}

/// A duration in seconds in words: `42 s`, `4 min 12 s`, `12 min`,
/// `3 h 05 min`, `2 d 4 h` (seconds only while they matter).
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return NONE.to_string();
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..600 => format!("{} min {} s", s / 60, s % 60),
        600..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// Three significant digits, for test statistics: `0.0523`, `1.23`, `123`.
pub fn sig(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// A p-value: `0.0021`, `0.43`, or `3.2e-7` when tiny.
pub fn pvalue(p: f64) -> String {
    if !p.is_finite() {
        NONE.to_string()
    } else if p == 0.0 {
        "0".to_string()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        sig(p)
    }
}

fn parse(rfc3339: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// An RFC 3339 time as `2026-11-28 13:10:05 UTC` (the text as given when
/// it does not parse).
pub fn time(rfc3339: &str) -> String {
    parse(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| rfc3339.to_string())
}

/// An RFC 3339 time without seconds or year: `Nov 28 13:10` (UTC).
pub fn short_time(rfc3339: &str) -> String {
    parse(rfc3339)
        .map(|t| t.format("%b %d %H:%M").to_string())
        .unwrap_or_else(|| rfc3339.to_string())
}

/// The start of a chart slot, as short as its width allows: `13:05` for
/// slots under a quarter of an hour, `Thu 13:15` under an hour (a day's
/// range), `Nov 28 13:00` under a day (a week's: a weekday would repeat),
/// `Nov 28` for whole days. Times are UTC.
pub fn slot_label(rfc3339: &str, slot_minutes: i64) -> String {
    let Some(t) = parse(rfc3339) else {
        return rfc3339.to_string();
    };
    let pattern = match slot_minutes {
        ..15 => "%H:%M",
        15..60 => "%a %H:%M",
        60..1440 => "%b %d %H:%M",
        _ => "%b %d",
    };
    t.format(pattern).to_string()
}

/// A moment as people read it: relative (`3 min ago`, `in 57 min`), with
/// the full time for a tooltip (`2026-11-28 13:10:05 UTC`).
pub struct When {
    pub relative: String,
    pub full: String,
}

/// [`When`] of `at` seen from `now`.
pub fn when(at: &crate::domain::Timestamp, now: &crate::domain::Timestamp) -> When {
    let seconds = (*now - *at).num_seconds();
    let span = |s: i64| match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86400),
    };
    let relative = match seconds {
        -5..=5 => "just now".to_string(),
        s if s > 0 => format!("{} ago", span(s)),
        s => format!("in {}", span(-s)),
    };
    When {
        relative,
        full: at.and_utc().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// [`When`] of an RFC 3339 time seen from `now`; a text that does not
/// parse is shown as given.
pub fn when_rfc3339(at: &str, now: &crate::domain::Timestamp) -> When {
    match parse(at) {
        Some(t) => when(&t.naive_utc(), now),
        None => When {
            relative: at.to_string(),
            full: at.to_string(),
        },
    }
}

/// `s` as one segment of a URL path: everything but letters, digits and
/// `-_~` percent-encoded (dots too, so an id `.` or `..` stays a segment).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_relative_with_the_full_time_beside() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_micro_opt(13, 10, 5, 123_456)
            .unwrap();
        let at = |s: i64| when(&(now + chrono::Duration::seconds(s)), &now).relative;
        assert_eq!(at(-2), "just now");
        assert_eq!(at(-42), "42 s ago");
        assert_eq!(at(-180), "3 min ago");
        assert_eq!(at(-7300), "2 h ago");
        assert_eq!(at(3420), "in 57 min");
        assert_eq!(at(-3 * 86400), "3 days ago");
        assert_eq!(when(&now, &now).full, "2026-11-28 13:10:05 UTC");
        let card = when_rfc3339("2026-11-28T14:10:05+01:00", &now);
        assert_eq!(
            (card.relative.as_str(), card.full.as_str()),
            ("just now", "2026-11-28 13:10:05 UTC")
        );
        assert_eq!(when_rfc3339("yesterday", &now).relative, "yesterday");
    }

    #[test]
    fn path_segments_keep_dots_and_slashes_inside_the_segment() {
        assert_eq!(path_segment("case-0001_a~"), "case-0001_a~");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("a:b/c?d"), "a%3Ab%2Fc%3Fd");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count_i(-3), "0");
    }

    #[test]
    fn shares_never_round_into_looking_exact() {
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(1.0), "100%");
        assert_eq!(pct(0.8243), "82.4%");
        assert_eq!(pct(0.0001), "<0.1%");
        assert_eq!(pct(0.99999), ">99.9%");
        assert_eq!(pct(f64::NAN), NONE);
        assert_eq!(opt_pct(None), NONE);
        assert_eq!(interval(0.86, 0.947), "86.0–94.7%");
    }

    #[test]
    fn latencies_sizes_and_durations_read_in_their_unit() {
        assert_eq!(ms(0.42), "0.42 ms");
        assert_eq!(ms(3.44), "3.4 ms");
        assert_eq!(ms(120.2), "120 ms");
        assert_eq!(ms(1500.0), "1.50 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(13_107_200), "12.5 MiB");
        assert_eq!(bytes(187_000_000), "178 MiB");
        assert_eq!(bytes(1_320_000_000), "1.23 GiB");
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(252.0), "4 min 12 s");
        assert_eq!(duration(2710.0), "45 min");
        assert_eq!(duration(3.0 * 3600.0 + 300.0), "3 h 05 min");
        assert_eq!(duration(2.0 * 86400.0 + 4.0 * 3600.0), "2 d 4 h");
        assert_eq!(rate(0.5234), "0.52");
        assert_eq!(rate(1234.4), "1,234");
    }

    #[test]
    fn statistics_keep_three_significant_digits() {
        assert_eq!(sig(0.052345), "0.0523");
        assert_eq!(sig(1.2345), "1.23");
        assert_eq!(sig(123.45), "123");
        assert_eq!(pvalue(0.00213), "0.00213");
        assert_eq!(pvalue(3.2e-7), "3.2e-7");
    }

    #[test]
    fn times_are_utc_and_slot_labels_fit_the_slot() {
        let t = "2026-11-26T13:05:00.000000Z";
        assert_eq!(time(t), "2026-11-26 13:05:00 UTC");
        assert_eq!(slot_label(t, 1), "13:05");
        assert_eq!(slot_label(t, 15), "Thu 13:05");
        assert_eq!(slot_label(t, 120), "Nov 26 13:05");
        assert_eq!(slot_label(t, 1440), "Nov 26");
        assert_eq!(short_time(t), "Nov 26 13:05");
        assert_eq!(time("not a time"), "not a time");
    }
}
