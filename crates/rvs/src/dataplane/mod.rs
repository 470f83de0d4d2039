//! The kernel side as rvsd drives it: the director XDP program and its pinned maps, next-hop
//! resolution for real servers, and writing the model into the maps.

mod addr;
mod loader;
mod maps;
mod neigh;
mod pass;
mod program;

pub use addr::{ip_from_words, ip_words, port_be};
pub use loader::{AttachMode, Dataplane, LoadOptions, cleanup_pins};
pub use maps::{ConnEntry, DirectorMaps};
pub use neigh::{Neighbours, NextHop};
pub use pass::{PassProgram, attach_pass_program};
pub use program::{DestPlacement, program_service, remove_service, service_key, write_dest};
