//! Virtual services and real servers as ipvsadm and keepalived describe them, and the table that
//! holds them with the kernel's rules for changing it.

mod mark;
mod table;
mod types;

pub use mark::{CompiledPrefix, MarkMatch, MarkRule, compile as compile_mark_rules, mask};
pub use table::{Model, ModelError, Service, TrashedDest};
pub use types::*;
