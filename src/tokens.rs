//! API tokens: `vdt_<id>_<secret>`. Only the SHA-256 of the secret is
//! stored (the secret is 256 random bits, so a fast hash is enough; argon2
//! is for passwords people choose). Verified tokens are cached for one
//! second so the scoring path does not read the database on every request:
//! one indexed read per token per second per instance, and a revocation
//! refuses the token on every instance within [`CACHE_TTL`].
//!
//! A token may have a rate of its own (`verdict token create --rate
//! 100/s`), read with it and cached alike: a change of rate reaches every
//! instance within the same second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::db::{DbConnection, DbError};
use crate::domain::Rate;
use crate::store::audit;
use crate::store::tokens as store;

const PREFIX: &str = "vdt_";
/// How long a verified (or revoked) token is believed without asking the
/// database again; a revocation takes effect on every instance within this
/// time. It is counted from before the read, so an answer read just before
/// a revocation is not believed for longer.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

fn hash(secret: &str) -> String {
    crate::crypto::sha256_hex(secret)
}

/// Splits a presented token into id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && secret.len() == 64).then_some((id, secret))
}

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token name is 1-64 characters")]
    InvalidName,
    #[error("a token named {0:?} exists already")]
    NameTaken(String),
    #[error("no token named {0:?}")]
    UnknownName(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for TokenError {
    fn from(e: diesel::result::Error) -> Self {
        TokenError::Database(e.into())
    }
}

impl TokenError {
    /// A stable code for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidName => "invalid_name",
            TokenError::NameTaken(_) => "name_taken",
            TokenError::UnknownName(_) => "unknown_token",
            TokenError::Database(_) => "internal",
        }
    }
}

/// Creates a token named `name`; returns the token, which is shown once.
pub fn create(conn: &mut DbConnection, name: &str, actor: &str) -> Result<String, TokenError> {
    create_with_rate(conn, name, None, actor)
}

fn stored(rate: Option<Rate>) -> store::StoredRate {
    match rate {
        Some(r) => (Some(i64::from(r.limit())), Some(i64::from(r.window_secs()))),
        None => (None, None),
    }
}

/// A stored rate, if it is one (a row edited by hand into nonsense is no
/// rate, rather than a token that cannot be used).
fn rate_of(stored: store::StoredRate) -> Option<Rate> {
    match stored {
        (Some(limit), Some(secs)) => {
            Rate::new(u32::try_from(limit).ok()?, u32::try_from(secs).ok()?).ok()
        }
        _ => None,
    }
}

/// [`create`] with a rate of the token's own (`None`: the configured
/// default, if any).
pub fn create_with_rate(
    conn: &mut DbConnection,
    name: &str,
    rate: Option<Rate>,
    actor: &str,
) -> Result<String, TokenError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(TokenError::InvalidName);
    }
    let mut bytes = [0u8; 40];
    rand::rng().fill_bytes(&mut bytes);
    let id = hex::encode(&bytes[..8]);
    let secret = hex::encode(&bytes[8..]);
    crate::db::write_transaction::<_, TokenError, _>(conn, |conn| {
        if store::name_taken(conn, name)? {
            return Err(TokenError::NameTaken(name.to_string()));
        }
        store::insert(conn, &id, name, &hash(&secret), stored(rate))?;
        audit::record(
            conn,
            actor,
            "token.create",
            None,
            Some(name),
            serde_json::json!({"id": id, "rate": rate.map(|r| r.to_string())}),
        )?;
        Ok(())
    })?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

/// Revokes the token named `name`.
pub fn revoke(conn: &mut DbConnection, name: &str, actor: &str) -> Result<(), TokenError> {
    crate::db::write_transaction::<_, TokenError, _>(conn, |conn| {
        if !store::revoke(conn, name)? {
            return Err(TokenError::UnknownName(name.to_string()));
        }
        audit::record(
            conn,
            actor,
            "token.revoke",
            None,
            Some(name),
            serde_json::json!({}),
        )?;
        Ok(())
    })
}

/// Sets (or with `None` removes) the rate of the token named `name`;
/// every instance applies it within [`CACHE_TTL`].
pub fn set_rate(
    conn: &mut DbConnection,
    name: &str,
    rate: Option<Rate>,
    actor: &str,
) -> Result<(), TokenError> {
    crate::db::write_transaction::<_, TokenError, _>(conn, |conn| {
        if !store::set_rate(conn, name, stored(rate))? {
            return Err(TokenError::UnknownName(name.to_string()));
        }
        audit::record(
            conn,
            actor,
            "token.rate",
            None,
            Some(name),
            serde_json::json!({"rate": rate.map(|r| r.to_string())}),
        )?;
        Ok(())
    })
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    store::count(conn)
}

/// What the database says of a token id: its name, secret hash and rate,
/// if it exists and is not revoked.
#[derive(Clone)]
struct Known {
    client: TokenClient,
    secret_sha256: String,
}

/// The client a valid token belongs to, and the token's own rate.
#[derive(Debug, Clone)]
pub struct TokenClient {
    pub name: String,
    pub rate: Option<Rate>,
}

fn lookup(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Known>> {
    Ok(
        store::active(conn, id)?.map(|(name, secret_sha256, rate)| Known {
            client: TokenClient {
                name,
                rate: rate_of(rate),
            },
            secret_sha256,
        }),
    )
}

/// Verified token ids, for a short time.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Option<Known>, Instant)>>,
}

/// The outcome of a cache look-up.
pub enum Cached {
    /// The token's client.
    Valid(TokenClient),
    Invalid,
    /// Ask the database.
    Unknown,
}

impl TokenCache {
    pub fn check(&self, token: &str) -> Cached {
        let Some((id, secret)) = parse(token) else {
            return Cached::Invalid;
        };
        let entries = self.entries.lock().expect("token cache lock");
        match entries.get(id) {
            Some((known, at)) if at.elapsed() < CACHE_TTL => match known {
                Some(k) if matches_secret(k, secret) => Cached::Valid(k.client.clone()),
                _ => Cached::Invalid,
            },
            _ => Cached::Unknown,
        }
    }

    /// Reads the token from the database and remembers the answer.
    pub fn verify(&self, conn: &mut DbConnection, token: &str) -> QueryResult<Option<TokenClient>> {
        let Some((id, secret)) = parse(token) else {
            return Ok(None);
        };
        let asked = Instant::now();
        let known = lookup(conn, id)?;
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(id.to_string(), (known.clone(), asked));
        Ok(known
            .filter(|k| matches_secret(k, secret))
            .map(|k| k.client))
    }
}

fn matches_secret(known: &Known, secret: &str) -> bool {
    bool::from(
        hash(secret)
            .as_bytes()
            .ct_eq(known.secret_sha256.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_are_refused_without_a_lookup() {
        let cache = TokenCache::default();
        for t in [
            "",
            "vdt_",
            "Bearer x",
            "vdt_short_secret",
            &format!("vdt_{}_{}", "a".repeat(16), "b".repeat(63)),
        ] {
            assert!(matches!(cache.check(t), Cached::Invalid), "{t}");
        }
        let good = format!("vdt_{}_{}", "a".repeat(16), "b".repeat(64));
        assert!(matches!(cache.check(&good), Cached::Unknown));
    }
}
