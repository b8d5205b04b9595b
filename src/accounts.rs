//! Accounts of the people who use the web UI: reviewers and admins.
//! Passwords are stored as argon2id hashes (PHC strings), never in clear.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use diesel::prelude::*;
use rand::Rng;

use crate::db::schema::{user_tasks, users};
use crate::db::DbConnection;
use crate::domain::{now, Role};

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

/// Adds a user; refuses a taken name or a short password.
pub fn add_user(
    conn: &mut DbConnection,
    name: &str,
    password: &str,
    role: Role,
    tasks: &[String],
    actor: &str,
) -> anyhow::Result<()> {
    check_name(name).map_err(anyhow::Error::msg)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        anyhow::bail!("the password is too short: use at least {MIN_PASSWORD_LEN} characters");
    }
    let hash = hash_password(password).map_err(anyhow::Error::msg)?;
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let taken = users::table
            .filter(users::name.eq(name))
            .count()
            .get_result::<i64>(conn)?;
        if taken > 0 {
            anyhow::bail!("a user named {name:?} exists already");
        }
        let at = now();
        diesel::insert_into(users::table)
            .values((
                users::name.eq(name),
                users::password_hash.eq(&hash),
                users::role.eq(role.as_str()),
                users::disabled.eq(false),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(conn)?;
        for task in tasks {
            diesel::insert_into(user_tasks::table)
                .values((user_tasks::user_name.eq(name), user_tasks::task.eq(task)))
                .execute(conn)?;
        }
        crate::audit::record(
            conn,
            actor,
            "user.add",
            None,
            Some(name),
            serde_json::json!({"role": role.as_str(), "tasks": tasks}),
        )?;
        Ok(())
    })
}

/// Disables (or enables again) a user: a disabled user cannot sign in.
pub fn set_disabled(
    conn: &mut DbConnection,
    name: &str,
    disabled: bool,
    actor: &str,
) -> anyhow::Result<()> {
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let n = diesel::update(users::table.find(name))
            .set((users::disabled.eq(disabled), users::updated_at.eq(now())))
            .execute(conn)?;
        if n == 0 {
            anyhow::bail!("no user named {name:?}");
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        crate::audit::record(conn, actor, action, None, Some(name), serde_json::json!({}))?;
        Ok(())
    })
}

/// The tasks a user is given.
pub fn tasks_of(conn: &mut DbConnection, name: &str) -> QueryResult<Vec<String>> {
    user_tasks::table
        .select(user_tasks::task)
        .filter(user_tasks::user_name.eq(name))
        .order(user_tasks::task)
        .load(conn)
}

/// Every user: name, role, disabled.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, bool)>> {
    users::table
        .select((users::name, users::role, users::disabled))
        .order(users::name)
        .load(conn)
}

/// The user with this name and password, if enabled. Takes the time of a
/// hash check whether or not the user exists, so timing does not tell.
pub fn authenticate(
    conn: &mut DbConnection,
    name: &str,
    password: &str,
) -> QueryResult<Option<User>> {
    let row: Option<(String, String, bool)> = users::table
        .select((users::password_hash, users::role, users::disabled))
        .find(name)
        .get_result(conn)
        .optional()?;
    let Some((hash, role, disabled)) = row else {
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
    let row: Option<(String, bool)> = users::table
        .select((users::role, users::disabled))
        .find(name)
        .get_result(conn)
        .optional()?;
    let Some((role, false)) = row else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    let tasks = user_tasks::table
        .select(user_tasks::task)
        .filter(user_tasks::user_name.eq(name))
        .order(user_tasks::task)
        .load(conn)?;
    Ok(Some(User {
        name: name.to_string(),
        role,
        tasks,
    }))
}

/// On a database with no users, creates `admin` with a random password and
/// returns the password (to be shown once).
pub fn ensure_first_admin(conn: &mut DbConnection) -> anyhow::Result<Option<String>> {
    let count: i64 = users::table.count().get_result(conn)?;
    if count > 0 {
        return Ok(None);
    }
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let password: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
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
