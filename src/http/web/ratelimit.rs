//! Sign-in attempts, limited per account and per client address: failures
//! within a window are counted; past the limit every attempt is refused
//! until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_ACCOUNT: usize = 5;
pub const PER_ADDRESS: usize = 20;

#[derive(Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignInLimiter {
    fn keys(account: &str, address: &str) -> [(String, usize); 2] {
        [
            (format!("account:{account}"), PER_ACCOUNT),
            (format!("address:{address}"), PER_ADDRESS),
        ]
    }

    /// `Err(wait)` when either key is over its limit.
    pub fn check(&self, account: &str, address: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("limiter lock");
        for (key, limit) in Self::keys(account, address) {
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = *times.front().expect("non-empty");
                    return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
                }
            }
        }
        Ok(())
    }

    pub fn failed(&self, account: &str, address: &str) {
        let mut failures = self.failures.lock().expect("limiter lock");
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < WINDOW));
        }
        for (key, _) in Self::keys(account, address) {
            failures.entry(key).or_default().push_back(Instant::now());
        }
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .expect("limiter lock")
            .remove(&format!("account:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_its_limit_and_others_are_not() {
        let limiter = SignInLimiter::default();
        for _ in 0..PER_ACCOUNT {
            assert!(limiter.check("ana", "1.2.3.4").is_ok());
            limiter.failed("ana", "1.2.3.4");
        }
        assert!(
            limiter.check("ana", "5.6.7.8").is_err(),
            "per account, from any address"
        );
        assert!(limiter.check("bob", "1.2.3.4").is_ok());
        limiter.succeeded("ana");
        assert!(limiter.check("ana", "5.6.7.8").is_ok());
    }

    #[test]
    fn an_address_is_locked_after_its_limit_across_accounts() {
        let limiter = SignInLimiter::default();
        for i in 0..PER_ADDRESS {
            limiter.failed(&format!("user{i}"), "9.9.9.9");
        }
        assert!(limiter.check("someone-new", "9.9.9.9").is_err());
        assert!(limiter.check("someone-new", "8.8.8.8").is_ok());
    }
}
