//! Virtual services and real servers as ipvsadm and keepalived describe them, and the table that
//! holds them with the kernel's rules for changing it.

mod table;
mod types;

pub use table::{Model, ModelError, Service, TrashedDest};
pub use types::*;
