//! The HTTP layer's shared parts. (`api/`, `web/` and `error.rs` move in
//! here later.)

pub mod download;
