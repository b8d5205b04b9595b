//! API tokens: `vdt_<id>_<secret>`. Only the SHA-256 of the secret is
//! stored (the secret is 256 random bits, so a fast hash is enough; argon2
//! is for passwords people choose). Verified tokens are cached briefly so the
//! scoring path does not read the database on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::RngCore;

use subtle::ConstantTimeEq;

use crate::db::schema::api_tokens;
use crate::db::DbConnection;

const PREFIX: &str = "vdt_";
/// How long a verified (or revoked) token is believed without asking the
/// database again; a revocation takes effect within this time.
const CACHE_TTL: Duration = Duration::from_secs(30);

fn hash(secret: &str) -> String {
    crate::crypto::sha256_hex(secret)
}

/// Splits a presented token into id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && secret.len() == 64).then_some((id, secret))
}

/// Creates a token named `name`; returns the token, which is shown once.
pub fn create(conn: &mut DbConnection, name: &str, actor: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        anyhow::bail!("a token name is 1-64 characters");
    }
    let mut bytes = [0u8; 40];
    rand::rng().fill_bytes(&mut bytes);
    let id = hex::encode(&bytes[..8]);
    let secret = hex::encode(&bytes[8..]);
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let taken = api_tokens::table
            .filter(api_tokens::name.eq(name))
            .count()
            .get_result::<i64>(conn)?;
        if taken > 0 {
            anyhow::bail!("a token named {name:?} exists already");
        }
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::id.eq(&id),
                api_tokens::name.eq(name),
                api_tokens::secret_sha256.eq(hash(&secret)),
                api_tokens::created_at.eq(crate::domain::now()),
            ))
            .execute(conn)?;
        crate::audit::record(
            conn,
            actor,
            "token.create",
            None,
            Some(name),
            serde_json::json!({"id": id}),
        )?;
        Ok(())
    })?;
    Ok(format!("{PREFIX}{id}_{secret}"))
}

/// Revokes the token named `name`.
pub fn revoke(conn: &mut DbConnection, name: &str, actor: &str) -> anyhow::Result<()> {
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let n = diesel::update(api_tokens::table.filter(api_tokens::name.eq(name)))
            .set(api_tokens::revoked_at.eq(Some(crate::domain::now())))
            .execute(conn)?;
        if n == 0 {
            anyhow::bail!("no token named {name:?}");
        }
        crate::audit::record(
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

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    api_tokens::table.count().get_result(conn)
}

/// What the database says of a token id: its name and secret hash, if it
/// exists and is not revoked.
#[derive(Clone)]
struct Known {
    name: String,
    secret_sha256: String,
}

fn lookup(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Known>> {
    api_tokens::table
        .select((api_tokens::name, api_tokens::secret_sha256))
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::revoked_at.is_null())
        .get_result::<(String, String)>(conn)
        .optional()
        .map(|row| {
            row.map(|(name, secret_sha256)| Known {
                name,
                secret_sha256,
            })
        })
}

/// Verified token ids, for a short time.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Option<Known>, Instant)>>,
}

/// The outcome of a cache look-up.
pub enum Cached {
    /// The token's client name.
    Valid(String),
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
                Some(k) if matches_secret(k, secret) => Cached::Valid(k.name.clone()),
                _ => Cached::Invalid,
            },
            _ => Cached::Unknown,
        }
    }

    /// Reads the token from the database and remembers the answer.
    pub fn verify(&self, conn: &mut DbConnection, token: &str) -> QueryResult<Option<String>> {
        let Some((id, secret)) = parse(token) else {
            return Ok(None);
        };
        let known = lookup(conn, id)?;
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(id.to_string(), (known.clone(), Instant::now()));
        Ok(known.filter(|k| matches_secret(k, secret)).map(|k| k.name))
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
