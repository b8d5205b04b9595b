//! Rate limits, shared by every instance on one database.
//!
//! - **Request rates** (per token, per client address): each instance
//!   counts in memory, in fixed windows ([`Window`]), and [`RateSync`]
//!   adds its counts to the `rate_counts` table every `sync_ms` (sooner
//!   when a count reaches a quarter of its limit, or a key's window starts)
//!   and reads back the total of every instance. A request is admitted
//!   when the total at the last sync plus what this instance counted since
//!   is under the limit: no database work on the request's path.
//!
//!   What an instance does not see is what the others admitted since its
//!   last sync, so the total admitted in one window is at most
//!   `limit + (instances − 1) × (what one instance admits in a sync
//!   interval)`; with each instance syncing at a quarter of the limit,
//!   about `limit × (1 + (instances − 1) / 4)`, plus
//!   `instances × rate × sync interval` for the requests admitted while a
//!   sync is on its way; never more than `instances × limit`.
//! - **Failed authentication** (per client address): rare, so counted in
//!   the database at once ([`count_failed_auth`]); an address over the
//!   limit is remembered in memory until its window ends ([`Limiter::lock`])
//!   and refused before its token is looked at.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RateLimitSettings;
use crate::db::{Db, DbConnection, DbError};
use crate::domain::{unix_ms, Rate, Window, MAX_WINDOW_SECS};
use crate::store::rate_counts as store;

/// A request refused: try again in `retry_after` whole seconds (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; try again in {retry_after} s")]
pub struct Limited {
    pub retry_after: u64,
}

/// The key a token's requests are counted under.
pub fn token_key(name: &str) -> String {
    format!("token:{name}")
}

/// The key a client address's API requests are counted under.
pub fn address_key(address: IpAddr) -> String {
    format!("address:{address}")
}

/// The key a client address's failed API authentications are counted
/// under.
fn failures_key(address: IpAddr) -> String {
    format!("auth-failures:{address}")
}

/// One key's count in its current window.
#[derive(Debug, Clone)]
struct Counter {
    window: Window,
    limit: i64,
    /// The total of every instance at the last sync (ours included).
    global: i64,
    /// Counted here and not yet sent.
    unsynced: i64,
    /// Sent, and the sync not yet answered.
    syncing: i64,
}

impl Counter {
    fn new(window: Window, limit: i64) -> Counter {
        Counter {
            window,
            limit,
            global: 0,
            unsynced: 0,
            syncing: 0,
        }
    }

    fn used(&self) -> i64 {
        self.global + self.syncing + self.unsynced
    }
}

/// What one sync sends for one key.
#[derive(Debug, Clone)]
pub struct Delta {
    pub key: String,
    pub window: Window,
    pub count: i64,
}

/// Which limit refused a request (`verdict_requests_limited_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// An address over `per_address`.
    Address,
    /// A token over its own rate or `per_token`.
    Token,
    /// An address locked out after failed API authentications.
    LockedOut,
    /// The sign-in form: too many password attempts.
    SignIn,
}

impl LimitKind {
    pub const ALL: [LimitKind; 4] = [
        LimitKind::Address,
        LimitKind::Token,
        LimitKind::LockedOut,
        LimitKind::SignIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Address => "address",
            LimitKind::Token => "token",
            LimitKind::LockedOut => "failed_auth",
            LimitKind::SignIn => "sign_in",
        }
    }
}

/// The in-memory side of the limits: counters per key, and the addresses
/// locked out for failed authentication.
pub struct Limiter {
    settings: RateLimitSettings,
    counters: Mutex<HashMap<String, Counter>>,
    /// Locked-out addresses, until (Unix ms).
    locks: Mutex<HashMap<IpAddr, i64>>,
    /// Whether `locks` may hold anything: one atomic load on the way of
    /// every request while nobody is locked out.
    any_locked: AtomicBool,
    /// Wakes [`RateSync`] before its interval.
    wake: tokio::sync::Notify,
    /// Requests this instance refused with 429, per [`LimitKind`].
    refused: [AtomicU64; LimitKind::ALL.len()],
}

impl Limiter {
    pub fn new(settings: &RateLimitSettings) -> Limiter {
        Limiter {
            settings: settings.clone(),
            counters: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            any_locked: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            refused: Default::default(),
        }
    }

    /// Counts a request refused by `kind`'s limit.
    pub fn count_refusal(&self, kind: LimitKind) {
        self.refused[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The requests refused so far by each limit (every kind, zeros too).
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        LimitKind::ALL
            .iter()
            .map(|&k| (k.as_str(), self.refused[k as usize].load(Ordering::Relaxed)))
            .collect()
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// The rate a token is held to: its own, or the configured default.
    pub fn token_rate(&self, own: Option<Rate>) -> Option<Rate> {
        own.or(self.settings.per_token)
    }

    /// Counts one request under `key` at `rate`, or refuses it (a refused
    /// request is not counted).
    pub fn admit(&self, key: &str, rate: Rate) -> Result<(), Limited> {
        self.admit_at(key, rate, unix_ms())
    }

    fn admit_at(&self, key: &str, rate: Rate, at_ms: i64) -> Result<(), Limited> {
        let window = rate.window(at_ms);
        let limit = i64::from(rate.limit());
        let mut counters = self.counters.lock().expect("rate counters");
        let counter = match counters.get_mut(key) {
            Some(c) => c,
            None => counters
                .entry(key.to_string())
                .or_insert_with(|| Counter::new(window, limit)),
        };
        if counter.window != window {
            // A new window (or a changed rate): what was counted in the
            // old one no longer matters, and an answer still on its way
            // for it is ignored.
            *counter = Counter::new(window, limit);
        }
        counter.limit = limit;
        if counter.used() >= limit {
            return Err(Limited {
                retry_after: window.retry_after(at_ms),
            });
        }
        counter.unsynced += 1;
        // The first request of a window, and every quarter of the limit,
        // syncs without waiting for the interval.
        let quarter = (limit / 4).max(1);
        if counter.used() == 1 || counter.unsynced % quarter == 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The counts to send: each key's unsynced count moves to syncing.
    pub fn take(&self) -> Vec<Delta> {
        let mut counters = self.counters.lock().expect("rate counters");
        counters
            .iter_mut()
            .filter(|(_, c)| c.unsynced > 0)
            .map(|(key, c)| {
                let count = std::mem::take(&mut c.unsynced);
                c.syncing += count;
                Delta {
                    key: key.clone(),
                    window: c.window,
                    count,
                }
            })
            .collect()
    }

    /// The database's answer to a sync: `totals[i]` is every instance's
    /// count for `sent[i]` (ours included); `None` if the sync failed, and
    /// the counts go back to be sent again.
    pub fn synced(&self, sent: &[Delta], totals: Option<&[i64]>) {
        let mut counters = self.counters.lock().expect("rate counters");
        for (i, delta) in sent.iter().enumerate() {
            let Some(c) = counters.get_mut(&delta.key) else {
                continue;
            };
            if c.window != delta.window {
                continue;
            }
            c.syncing -= delta.count;
            match totals {
                Some(totals) => c.global = c.global.max(totals[i]),
                None => c.unsynced += delta.count,
            }
        }
    }

    /// Forgets counters whose window ended with nothing left to send, and
    /// lock-outs that ended.
    pub fn forget_old(&self, at_ms: i64) {
        let now = at_ms.div_euclid(1000);
        self.counters
            .lock()
            .expect("rate counters")
            .retain(|_, c| c.window.end() > now || c.unsynced > 0 || c.syncing > 0);
        let mut locks = self.locks.lock().expect("rate locks");
        locks.retain(|_, until| *until > at_ms);
        self.any_locked.store(!locks.is_empty(), Ordering::Relaxed);
    }

    /// Whether `address` is locked out for failed authentication, and for
    /// how long. One atomic load while nobody is.
    pub fn locked(&self, address: IpAddr) -> Option<Limited> {
        if !self.any_locked.load(Ordering::Relaxed) {
            return None;
        }
        let at_ms = unix_ms();
        let until = *self.locks.lock().expect("rate locks").get(&address)?;
        (until > at_ms).then(|| Limited {
            retry_after: ((until - at_ms) as u64).div_ceil(1000).max(1),
        })
    }

    /// Whether any address may be locked out (a cheap look before working
    /// out the client's address).
    pub fn any_locked(&self) -> bool {
        self.any_locked.load(Ordering::Relaxed)
    }

    /// Locks `address` out for `limited.retry_after` seconds.
    pub fn lock(&self, address: IpAddr, limited: Limited) {
        let until = unix_ms() + (limited.retry_after as i64) * 1000;
        let mut locks = self.locks.lock().expect("rate locks");
        let entry = locks.entry(address).or_insert(until);
        *entry = (*entry).max(until);
        self.any_locked.store(true, Ordering::Relaxed);
    }

    /// Waits until a count wants syncing before the interval.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// The window failed authentications are counted in now, if they are.
    fn failures_window(&self, at_ms: i64) -> Option<(Window, i64)> {
        let limit = self.settings.failed_auth_per_address;
        (limit > 0).then(|| {
            (
                Window::containing(at_ms, self.settings.failed_auth_window_secs),
                i64::from(limit),
            )
        })
    }
}

/// Whether `address` has used up its failed authentications in the
/// database (another instance may have counted them): checked when a
/// token is looked up there anyway.
pub fn failed_auth_blocked(
    conn: &mut DbConnection,
    limiter: &Limiter,
    address: IpAddr,
) -> Result<Option<Limited>, DbError> {
    let at_ms = unix_ms();
    let Some((window, limit)) = limiter.failures_window(at_ms) else {
        return Ok(None);
    };
    let count = store::get(conn, &failures_key(address), window.start)?;
    Ok((count >= limit).then(|| Limited {
        retry_after: window.retry_after(at_ms),
    }))
}

/// What counting a failed authentication decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Under the limit: answer as unauthenticated.
    Counted,
    /// The limit is reached: this request is still answered as
    /// unauthenticated, the address's next ones are refused until the
    /// window ends.
    LastAllowed(Limited),
    /// Over the limit: refuse.
    Refused(Limited),
}

/// Counts a failed authentication from `address` (in the database, at
/// once: every instance shares the count). Run it in a write.
pub fn count_failed_auth(
    conn: &mut DbConnection,
    limiter: &Limiter,
    address: IpAddr,
) -> Result<Failure, DbError> {
    let at_ms = unix_ms();
    let Some((window, limit)) = limiter.failures_window(at_ms) else {
        return Ok(Failure::Counted);
    };
    let count = store::add(conn, &failures_key(address), window.start, 1)?;
    let limited = Limited {
        retry_after: window.retry_after(at_ms),
    };
    Ok(match count {
        n if n < limit => Failure::Counted,
        n if n == limit => Failure::LastAllowed(limited),
        _ => Failure::Refused(limited),
    })
}

/// How often old windows are deleted from the database.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What one pass of [`RateSync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Keys whose counts were sent.
    pub keys: usize,
    /// Old windows deleted.
    pub pruned: usize,
}

/// A job: sends each instance's counts to the database and reads back the
/// totals; deletes windows that ended.
pub struct RateSync {
    pub db: Db,
    pub limiter: Arc<Limiter>,
    pub every: Duration,
    next_prune: Instant,
}

impl RateSync {
    pub fn new(db: Db, limiter: Arc<Limiter>, every: Duration) -> RateSync {
        RateSync {
            db,
            limiter,
            every,
            next_prune: Instant::now(),
        }
    }

    /// One pass: sync, and once a minute delete windows that ended more
    /// than an hour ago (the longest a window may be).
    #[tracing::instrument(name = "rate_sync", skip_all)]
    pub async fn run_once(&mut self) -> Result<Synced, DbError> {
        let keys = self.sync().await?;
        let pruned = if Instant::now() >= self.next_prune {
            self.next_prune = Instant::now() + PRUNE_EVERY;
            let at_ms = unix_ms();
            self.limiter.forget_old(at_ms);
            let before = at_ms.div_euclid(1000) - i64::from(MAX_WINDOW_SECS);
            self.db
                .write(move |conn| Ok::<_, DbError>(store::prune(conn, before)?))
                .await?
        } else {
            0
        };
        Ok(Synced { keys, pruned })
    }

    /// Adds the unsynced counts to the database in one transaction and
    /// takes back the totals; returns the keys sent.
    pub async fn sync(&self) -> Result<usize, DbError> {
        let sent = self.limiter.take();
        if sent.is_empty() {
            return Ok(0);
        }
        let deltas = Arc::new(sent);
        let written = deltas.clone();
        let totals = self
            .db
            .write(move |conn| {
                written
                    .iter()
                    .map(|d| store::add(conn, &d.key, d.window.start, d.count))
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(DbError::from)
            })
            .await;
        match totals {
            Ok(totals) => {
                self.limiter.synced(&deltas, Some(&totals));
                Ok(deltas.len())
            }
            Err(e) => {
                self.limiter.synced(&deltas, None);
                Err(e)
            }
        }
    }

    /// Syncs every `every`, or sooner when a count asks for it (but not
    /// more often than ten times an interval); a failed pass is logged and
    /// its counts go with the next.
    pub async fn run_until_stopped(mut self) {
        let gap = self.every / 10;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = self.limiter.woken() => {}
            }
            if let Err(e) = self.run_once().await {
                tracing::error!(error = %e, "rate limit sync failed; counts kept for the next pass");
            }
            tokio::time::sleep(gap).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(&RateLimitSettings::default())
    }

    const T0: i64 = 1_764_504_000_000; // a multiple of 60 s

    #[test]
    fn a_burst_of_the_limit_is_admitted_then_refused_until_the_window_ends() {
        let l = limiter();
        let rate: Rate = "3/10s".parse().unwrap();
        for _ in 0..3 {
            l.admit_at("k", rate, T0 + 2_500).unwrap();
        }
        let refused = l.admit_at("k", rate, T0 + 2_500).unwrap_err();
        assert_eq!(refused.retry_after, 8); // 7.5 s, rounded up
        assert_eq!(
            l.admit_at("k", rate, T0 + 9_999).unwrap_err().retry_after,
            1
        );
        // The next window starts afresh.
        l.admit_at("k", rate, T0 + 10_000).unwrap();
        // Another key has its own count.
        l.admit_at("other", rate, T0 + 2_500).unwrap();
    }

    #[test]
    fn other_instances_counts_arrive_with_a_sync() {
        let l = limiter();
        let rate: Rate = "10/min".parse().unwrap();
        l.admit_at("k", rate, T0).unwrap();
        l.admit_at("k", rate, T0).unwrap();
        let sent = l.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].count, 2);
        // While the sync is on its way the sent counts still count.
        for _ in 0..8 {
            l.admit_at("k", rate, T0).unwrap();
        }
        assert!(l.admit_at("k", rate, T0).is_err());
        // The database says 2 (ours) + 5 (another instance's): 7 + the 8
        // unsynced is over the limit.
        l.synced(&sent, Some(&[7]));
        assert!(l.admit_at("k", rate, T0).is_err());
        let sent = l.take();
        assert_eq!(sent[0].count, 8);
        // A failed sync puts the counts back.
        l.synced(&sent, None);
        assert_eq!(l.take()[0].count, 8);
    }

    #[test]
    fn an_answer_for_an_old_window_is_ignored() {
        let l = limiter();
        let rate: Rate = "2/s".parse().unwrap();
        l.admit_at("k", rate, T0).unwrap();
        let sent = l.take();
        l.admit_at("k", rate, T0 + 1_000).unwrap();
        l.synced(&sent, Some(&[100]));
        l.admit_at("k", rate, T0 + 1_000).unwrap();
        assert!(l.admit_at("k", rate, T0 + 1_000).is_err());
    }

    #[test]
    fn ended_windows_and_lock_outs_are_forgotten() {
        let l = limiter();
        let rate: Rate = "2/s".parse().unwrap();
        l.admit_at("k", rate, T0).unwrap();
        l.forget_old(T0 + 5_000);
        assert_eq!(l.take().len(), 1, "unsynced counts are kept");
        l.synced(&[], None);
        l.forget_old(T0 + 5_000);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.locked(ip).is_none());
        l.lock(ip, Limited { retry_after: 30 });
        assert!(l.locked(ip).unwrap().retry_after >= 29);
        assert!(l.locked("192.0.2.2".parse().unwrap()).is_none());
        l.forget_old(unix_ms() + 31_000);
        assert!(!l.any_locked());
    }
}
