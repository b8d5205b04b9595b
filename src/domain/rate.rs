//! Request rates (`100/s`, `6000/min`) and the fixed windows they are
//! counted in. A window is `[start, start + secs)` with `start` a multiple
//! of `secs` in Unix seconds, so every instance puts a request in the same
//! window without talking to the others.

use std::fmt;
use std::str::FromStr;

/// At most `limit` requests in each window of `window_secs` seconds; the
/// whole limit may be spent at once (the burst), then nothing until the
/// window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    limit: u32,
    window_secs: u32,
}

/// The longest window a rate may have: one hour.
pub const MAX_WINDOW_SECS: u32 = 3600;

impl Rate {
    /// `limit` requests per `window_secs` seconds: both at least 1, the
    /// window at most an hour.
    pub fn new(limit: u32, window_secs: u32) -> Result<Rate, String> {
        if limit == 0 {
            return Err("a rate allows at least 1 request (leave it out for no limit)".into());
        }
        if !(1..=MAX_WINDOW_SECS).contains(&window_secs) {
            return Err(format!(
                "a rate's window is 1 to {MAX_WINDOW_SECS} seconds, got {window_secs}"
            ));
        }
        Ok(Rate { limit, window_secs })
    }

    pub fn limit(self) -> u32 {
        self.limit
    }

    pub fn window_secs(self) -> u32 {
        self.window_secs
    }

    /// The window `at_ms` (Unix milliseconds) falls in.
    pub fn window(self, at_ms: i64) -> Window {
        Window::containing(at_ms, self.window_secs)
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `N/s`, `N/sec`, `N/second`, `N/m`, `N/min`, `N/minute`, `N/h`,
    /// `N/hour`, or `N/Ks` for a window of K seconds (`5/10s`).
    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("{s:?} is not a rate: write it as 100/s, 6000/min or 5/10s");
        let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let secs = match per {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            other => other
                .strip_suffix('s')
                .and_then(|k| k.parse::<u32>().ok())
                .ok_or_else(bad)?,
        };
        Rate::new(limit, secs)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window_secs {
            1 => write!(f, "{}/s", self.limit),
            60 => write!(f, "{}/min", self.limit),
            3600 => write!(f, "{}/hour", self.limit),
            secs => write!(f, "{}/{secs}s", self.limit),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One fixed window: its start (Unix seconds, a multiple of its length)
/// and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: i64,
    pub secs: u32,
}

impl Window {
    /// The window of `secs` seconds holding `at_ms` (Unix milliseconds).
    pub fn containing(at_ms: i64, secs: u32) -> Window {
        let secs = secs.max(1);
        let len = i64::from(secs);
        Window {
            start: at_ms.div_euclid(1000).div_euclid(len) * len,
            secs,
        }
    }

    /// The first second after the window.
    pub fn end(self) -> i64 {
        self.start + i64::from(self.secs)
    }

    /// Whole seconds from `at_ms` until the window ends, at least 1: what
    /// `Retry-After` says (a client that waits that long is in a new
    /// window).
    pub fn retry_after(self, at_ms: i64) -> u64 {
        let left_ms = self.end() * 1000 - at_ms;
        (left_ms.max(0) as u64).div_ceil(1000).max(1)
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_in_the_usual_ways() {
        for (text, limit, secs) in [
            ("100/s", 100, 1),
            ("100/second", 100, 1),
            (" 6000 / min ", 6000, 60),
            ("20/minute", 20, 60),
            ("5/10s", 5, 10),
            ("1000/hour", 1000, 3600),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!((rate.limit(), rate.window_secs()), (limit, secs), "{text}");
            assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate);
        }
        for bad in [
            "", "100", "0/s", "-1/s", "1/0s", "1/day", "x/s", "1/7201s", "1.5/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_are_aligned_to_their_length() {
        // 12:00:59.999 and 12:01:00.000 are in different one-minute windows.
        let noon = 1_764_504_000_000; // a multiple of 60 s
        let a = Window::containing(noon + 59_999, 60);
        let b = Window::containing(noon + 60_000, 60);
        assert_eq!(a.start * 1000, noon);
        assert_eq!(b.start, a.start + 60);
        assert_eq!(a.end(), b.start);
        // Seconds: 1.999 is in [1, 2).
        assert_eq!(Window::containing(1999, 1).start, 1);
        assert_eq!(Window::containing(2000, 1).start, 2);
        // Before 1970 still rounds down.
        assert_eq!(Window::containing(-1, 10).start, -10);
        // Ten-second windows start on multiples of ten.
        assert_eq!(
            Window::containing(25_500, 10),
            Window {
                start: 20,
                secs: 10
            }
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_to_the_window_end_and_at_least_one() {
        let w = Window::containing(120_000, 60); // [120, 180)
        assert_eq!(w.retry_after(120_000), 60);
        assert_eq!(w.retry_after(120_001), 60); // 59.999 s rounds up
        assert_eq!(w.retry_after(179_000), 1);
        assert_eq!(w.retry_after(179_999), 1); // 1 ms left: still 1
        assert_eq!(w.retry_after(180_000), 1); // past the end: never 0
        assert_eq!(Window::containing(5_400, 1).retry_after(5_400), 1);
    }
}
