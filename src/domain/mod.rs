//! The model's vocabulary, below every other layer: validated newtypes
//! (once one exists it is valid) and every enum of the model, each mapped
//! to its stored text once ([`text_enum!`](crate::text_enum)).

mod backend;
mod enums;
mod ids;
pub mod json;
mod text_enum;
mod time;

pub use backend::Backend;
pub use enums::*;
pub use ids::{ItemId, TaskName};
pub use time::{now, rfc3339, Timestamp};
