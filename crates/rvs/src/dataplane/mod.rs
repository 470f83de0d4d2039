//! The kernel side as rvsd drives it: the director XDP program and its pinned maps, next-hop
//! resolution for real servers, and writing the model into the maps.

mod addr;
pub mod batch;
mod list_space;
mod loader;
mod maps;
mod marks;
#[cfg(any(test, feature = "fuzzing"))]
pub mod memory;
mod neigh;
mod pass;
mod pin_lock;
mod program;
mod shared;
mod store;
pub mod sync_feed;
pub mod synced;

pub use addr::{ip_from_words, ip_words, port_be};
pub use list_space::ListSpace;
pub use loader::{AttachMode, Dataplane, LoadOptions, cleanup_pins, detach_pins};
pub use maps::{ConnEntry, DirectorMaps};
pub use marks::write_mark_rules;
pub use neigh::{Neighbours, NextHop};
pub use pass::{PassProgram, attach_pass_program};
pub use pin_lock::PinLock;
pub use program::{DestPlacement, Table, program_service, remove_service, service_key, write_dest};
pub use shared::{Field, SharedConns};
pub use store::{MapsRead, MapsWrite};
