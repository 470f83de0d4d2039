//! What rvsd runs: the director (requests against the model and the maps), connection expiry,
//! rate estimation, next-hop refresh, and the saved model that lets a restart pick up where it
//! left off.

mod director;
pub mod estimator;
pub mod expiry;
pub mod keepalived;
pub mod locality;
pub mod state;
mod views;
pub mod vrrp;

pub use director::{Director, DirectorOptions, Plane};
