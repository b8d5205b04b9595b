//! The model's vocabulary, below every other layer: validated newtypes
//! (once one exists it is valid) and every enum of the model, each mapped
//! to its stored text once ([`text_enum!`](crate::text_enum)).

mod address;
mod backend;
mod enums;
mod ids;
pub mod json;
mod rate;
mod text_enum;
mod time;

pub use address::{client_address, parse_networks, Network};
pub use backend::Backend;
pub use enums::*;
pub use ids::{ItemId, TaskName};
pub use rate::{unix_ms, Rate, Window, MAX_WINDOW_SECS};
pub use time::{now, rfc3339, Timestamp};
