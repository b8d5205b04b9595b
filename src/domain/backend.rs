//! Which database a URL names: validated once, at the edge.

/// Which backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A path to an SQLite file.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Backend {
    /// `postgres://…` and `postgresql://…` are PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or a bare path are an SQLite file.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://…"
            ));
        }
        if path == ":memory:" {
            return Err("an in-memory SQLite database cannot be shared by the pool and the writer: use a file".into());
        }
        Ok(Backend::Sqlite(path.to_string()))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Backend::Sqlite(_))
    }
}
