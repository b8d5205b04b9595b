//! Signed-in sessions: a random id the browser keeps, its SHA-256 in the
//! database, and a CSRF token per session for every form it posts.

use diesel::prelude::*;

use crate::accounts::{self, User};
use crate::crypto::{random_token, sha256_hex};
use crate::db::DbConnection;
use crate::domain::now;
use crate::store::sessions as store;

/// How long a session lasts from sign-in.
pub const SESSION_HOURS: i64 = 12;

/// Starts a session for `user_name`; returns the new id (for the cookie).
/// Always a fresh id: an id the browser had before signing in is never
/// adopted (no session fixation), and `previous` is ended.
pub fn start(
    conn: &mut DbConnection,
    user_name: &str,
    previous: Option<&str>,
) -> QueryResult<String> {
    let id = random_token();
    let at = now();
    crate::db::write_transaction(conn, |conn| {
        if let Some(previous) = previous {
            store::delete(conn, &sha256_hex(previous))?;
        }
        store::delete_expired(conn, at)?;
        store::insert(
            conn,
            &sha256_hex(&id),
            user_name,
            &random_token(),
            at + chrono::Duration::hours(SESSION_HOURS),
        )
    })?;
    Ok(id)
}

/// Ends the session with this id.
pub fn end(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    store::delete(conn, &sha256_hex(id))
}

/// The session's user and CSRF token: the session live, its user enabled.
pub fn lookup(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(User, String)>> {
    let Some((name, csrf)) = store::live(conn, &sha256_hex(id))? else {
        return Ok(None);
    };
    Ok(accounts::load(conn, &name)?.map(|user| (user, csrf)))
}
