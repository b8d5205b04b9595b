//! Accounts of the people who use the web UI: reviewers and admins.
//! Passwords are stored as argon2id hashes (PHC strings), never in clear.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use diesel::prelude::*;
use rand::Rng;

use crate::db::{Db, DbConnection, DbError};
use crate::domain::Role;
use crate::store::accounts as store;
use crate::store::audit;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// The role named `s`, or a message that says which roles there are.
pub fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: use reviewer or admin"))
}

/// A user name: 1-64 letters, digits, `.`, `_`, `-` or `@`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a user name: use 1-64 letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

/// Counts a sign-in attempt for `account` from `address` before its
/// password is checked (so concurrent attempts cannot slip past the limit,
/// and every instance shares it): `Err(wait)` when either is over its
/// limit (`[rate_limits] sign_in_per_account`, `sign_in_per_address` in
/// `sign_in_window_secs`; a key's window starts with its first attempt),
/// with how long until its window ends. Run it in a write.
pub fn admit_sign_in(
    conn: &mut DbConnection,
    account: &str,
    address: &str,
    limits: &crate::config::RateLimitSettings,
) -> Result<Result<(), chrono::Duration>, DbError> {
    let window = chrono::Duration::seconds(i64::from(limits.sign_in_window_secs));
    let at = crate::domain::now();
    let cutoff = at - window;
    store::prune_attempts(conn, cutoff)?;
    let mut wait = None;
    for (key, limit) in [
        (format!("account:{account}"), limits.sign_in_per_account),
        (format!("address:{address}"), limits.sign_in_per_address),
    ] {
        let (attempts, started) = store::count_attempt(conn, &key, at, cutoff)?;
        if attempts > i64::from(limit) {
            let left = started + window - at;
            wait = Some(wait.map_or(left, |w: chrono::Duration| w.max(left)));
        }
    }
    Ok(wait.map_or(Ok(()), Err))
}

/// A sign-in succeeded: the account's attempts are forgotten and the
/// address's attempt taken back (it limits failures).
pub fn signed_in(conn: &mut DbConnection, account: &str, address: &str) -> Result<(), DbError> {
    store::clear_attempts(conn, &format!("account:{account}"))?;
    store::uncount_attempt(conn, &format!("address:{address}"))?;
    Ok(())
}

/// An argon2id hash of `password` with a fresh random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A signed-in person as the rest of the service sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Tasks a reviewer may work; empty for admins (they may work all).
    pub tasks: Vec<String>,
}

impl User {
    pub fn may_work(&self, task: &str) -> bool {
        self.role == Role::Admin || self.tasks.iter().any(|t| t == task)
    }
}

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name is not a valid user name (the message says why).
    #[error("{0}")]
    InvalidName(String),
    #[error("the password is too short: use at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    #[error("a user named {0:?} exists already")]
    NameTaken(String),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        AccountError::Database(e.into())
    }
}

impl AccountError {
    /// A stable code for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidName(_) => "invalid_name",
            AccountError::PasswordTooShort => "password_too_short",
            AccountError::NameTaken(_) => "name_taken",
            AccountError::UnknownUser(_) => "unknown_user",
            AccountError::Hash(_) | AccountError::Database(_) => "internal",
        }
    }

    /// Whether the person asking can fix it (as opposed to a fault of ours,
    /// whose text is logged rather than shown).
    pub fn is_refusal(&self) -> bool {
        self.code() != "internal"
    }
}

/// A user ready to be written: checked, the password already hashed (the
/// slow part, done before the write so the writer never waits for argon2).
pub struct NewUser {
    name: String,
    password_hash: String,
    role: Role,
    tasks: Vec<String>,
}

impl NewUser {
    /// Checks the name and the password and hashes the password. Slow by
    /// design (argon2): call it off the async workers.
    pub fn new(
        name: &str,
        password: &str,
        role: Role,
        tasks: &[String],
    ) -> Result<NewUser, AccountError> {
        check_name(name).map_err(AccountError::InvalidName)?;
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AccountError::PasswordTooShort);
        }
        Ok(NewUser {
            name: name.to_string(),
            password_hash: hash_password(password).map_err(AccountError::Hash)?,
            role,
            tasks: tasks.to_vec(),
        })
    }

    /// Writes the user and the audit entry; call it in a write transaction.
    /// Refuses a taken name.
    pub fn insert(&self, conn: &mut DbConnection, actor: &str) -> Result<(), AccountError> {
        if store::exists(conn, &self.name)? {
            return Err(AccountError::NameTaken(self.name.clone()));
        }
        store::insert(
            conn,
            &self.name,
            &self.password_hash,
            self.role,
            &self.tasks,
        )?;
        audit::record(
            conn,
            actor,
            "user.add",
            None,
            Some(&self.name),
            serde_json::json!({"role": self.role.as_str(), "tasks": self.tasks}),
        )?;
        Ok(())
    }
}

/// Adds a user from a synchronous caller (the CLI, start-up).
pub fn add_user(
    conn: &mut DbConnection,
    name: &str,
    password: &str,
    role: Role,
    tasks: &[String],
    actor: &str,
) -> Result<(), AccountError> {
    let user = NewUser::new(name, password, role, tasks)?;
    crate::db::write_transaction(conn, |conn| user.insert(conn, actor))
}

/// Adds a user from a request: the password is hashed on the blocking pool,
/// then the user is written through the writer like every other write.
pub async fn add(
    db: &Db,
    name: String,
    password: String,
    role: Role,
    tasks: Vec<String>,
    actor: String,
) -> Result<(), AccountError> {
    let user = tokio::task::spawn_blocking(move || NewUser::new(&name, &password, role, &tasks))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    db.write(move |conn| user.insert(conn, &actor)).await
}

/// The letters of a generated password: no 0/O, 1/l/I to misread.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh password for a reset: four groups of five letters (about 116
/// bits), easy to read out and type.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..4)
        .map(|_| {
            (0..5)
                .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Gives a user a new password (hashed already): their sessions end, a
/// lock-out of their account is lifted, and the audit log says who did it
/// (never the password). Call it in a write transaction.
pub fn set_password_hash(
    conn: &mut DbConnection,
    name: &str,
    password_hash: &str,
    actor: &str,
) -> Result<(), AccountError> {
    if !store::set_password(conn, name, password_hash)? {
        return Err(AccountError::UnknownUser(name.to_string()));
    }
    let sessions = crate::store::sessions::delete_of_user(conn, name)?;
    store::clear_attempts(conn, &format!("account:{name}"))?;
    audit::record(
        conn,
        actor,
        "user.password",
        None,
        Some(name),
        serde_json::json!({"sessions_ended": sessions}),
    )?;
    Ok(())
}

/// Sets a user's password from a synchronous caller (the CLI).
pub fn set_password(
    conn: &mut DbConnection,
    name: &str,
    password: &str,
    actor: &str,
) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccountError::PasswordTooShort);
    }
    let hash = hash_password(password).map_err(AccountError::Hash)?;
    crate::db::write_transaction(conn, |conn| set_password_hash(conn, name, &hash, actor))
}

/// Resets a user's password from a request: a generated one, hashed on the
/// blocking pool, written through the writer. Returns it, to be shown
/// once; it is stored only as its hash.
pub async fn reset_password(db: &Db, name: String, actor: String) -> Result<String, AccountError> {
    let password = generate_password();
    let clear = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&clear))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?
        .map_err(AccountError::Hash)?;
    db.write(move |conn| set_password_hash(conn, &name, &hash, &actor))
        .await?;
    Ok(password)
}

/// Disables (or enables again) a user, with its audit entry: a disabled
/// user cannot sign in. Call it in a write transaction.
pub fn set_disabled(
    conn: &mut DbConnection,
    name: &str,
    disabled: bool,
    actor: &str,
) -> Result<(), AccountError> {
    if !store::set_disabled(conn, name, disabled)? {
        return Err(AccountError::UnknownUser(name.to_string()));
    }
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audit::record(conn, actor, action, None, Some(name), serde_json::json!({}))?;
    Ok(())
}

/// Gives a user exactly `tasks` (the ones they may review), with its
/// audit entry. Call it in a write transaction.
pub fn set_tasks(
    conn: &mut DbConnection,
    name: &str,
    tasks: &[String],
    actor: &str,
) -> Result<(), AccountError> {
    let before = store::tasks_of(conn, name)?;
    if !store::set_tasks(conn, name, tasks)? {
        return Err(AccountError::UnknownUser(name.to_string()));
    }
    audit::record(
        conn,
        actor,
        "user.tasks",
        None,
        Some(name),
        serde_json::json!({"before": before, "after": tasks}),
    )?;
    Ok(())
}

/// The tasks a user is given.
pub fn tasks_of(conn: &mut DbConnection, name: &str) -> QueryResult<Vec<String>> {
    store::tasks_of(conn, name)
}

/// Every user: name, role, disabled.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, bool)>> {
    store::list(conn)
}

/// The user with this name and password, if enabled. Takes the time of a
/// hash check whether or not the user exists, so timing does not tell.
pub fn authenticate(
    conn: &mut DbConnection,
    name: &str,
    password: &str,
) -> QueryResult<Option<User>> {
    let Some((hash, role, disabled)) = store::credentials(conn, name)? else {
        let _ = verify_password(password, &DUMMY_HASH);
        return Ok(None);
    };
    if !verify_password(password, &hash) || disabled || Role::parse(&role).is_none() {
        return Ok(None);
    }
    load(conn, name)
}

/// A hash of a password nobody knows, for equal-time failures.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let unknown: String = (0..32)
        .map(|_| rand::rng().random_range('a'..='z'))
        .collect();
    hash_password(&unknown).expect("argon2 hashes")
});

/// An enabled user by name, with their tasks.
pub fn load(conn: &mut DbConnection, name: &str) -> QueryResult<Option<User>> {
    let Some((role, false)) = store::role_of(conn, name)? else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    Ok(Some(User {
        name: name.to_string(),
        role,
        tasks: store::tasks_of(conn, name)?,
    }))
}

/// On a database with no users, creates `admin` with a random password and
/// returns the password (to be shown once).
pub fn ensure_first_admin(conn: &mut DbConnection) -> Result<Option<String>, AccountError> {
    if store::count(conn)? > 0 {
        return Ok(None);
    }
    let password = generate_password();
    add_user(conn, "admin", &password, Role::Admin, &[], "verdict")?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_salted() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn names_and_roles_are_checked() {
        assert!(check_name("ana.lopez@lab").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert_eq!(parse_role("admin"), Ok(Role::Admin));
        assert!(parse_role("root")
            .unwrap_err()
            .contains("reviewer or admin"));
        let reviewer = User {
            name: "r".into(),
            role: Role::Reviewer,
            tasks: vec!["a".into()],
        };
        assert!(reviewer.may_work("a") && !reviewer.may_work("b"));
    }
}
