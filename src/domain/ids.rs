//! Validated identifiers from the edge: once one exists it is valid.

use serde::{Deserialize, Deserializer, Serialize};

fn valid_identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A task's name: 1-64 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskName(String);

impl TaskName {
    pub fn parse(s: &str) -> Result<TaskName, String> {
        if valid_identifier(s, 64) && !s.starts_with('.') {
            Ok(TaskName(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a task name: use 1-64 letters, digits, '-', '_', '.' or ':'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TaskName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TaskName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's id of an item, its idempotency key within a task:
/// 1-128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ItemId(String);

impl ItemId {
    pub fn parse(s: &str) -> Result<ItemId, String> {
        if !s.is_empty() && s.chars().all(|c| c == '.') {
            // `.` and `..` are steps in a URL path: the item's pages could
            // not be reached.
            Err("an item id may not be only dots".to_string())
        } else if valid_identifier(s, 128) {
            Ok(ItemId(s.to_string()))
        } else {
            Err("an item id is 1-128 letters, digits, '-', '_', '.' or ':'".to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_plain() {
        assert!(ItemId::parse("case-0001").is_ok());
        assert!(ItemId::parse("a:b.c_d").is_ok());
        assert!(ItemId::parse("").is_err());
        for dots in [".", "..", "..."] {
            assert!(ItemId::parse(dots).is_err(), "{dots}");
        }
        assert!(ItemId::parse("a..b").is_ok());
        assert!(ItemId::parse("has space").is_err());
        assert!(ItemId::parse(&"x".repeat(129)).is_err());
        assert!(TaskName::parse("tumor-triage").is_ok());
        assert!(TaskName::parse("../etc").is_err());
    }
}
