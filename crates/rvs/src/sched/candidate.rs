//! What the counting schedulers see of a real server: its weight and live connection counts.
//! Their reference implementations (one per file) take the service's list in kernel order.

/// One real server as a scheduler sees it at the moment of a pick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    pub weight: i32,
    pub active: u32,
    pub inactive: u32,
    /// IP_VS_DEST_F_OVERLOAD.
    pub overloaded: bool,
}

impl Candidate {
    /// ip_vs_dest_conn_overhead: `active * 256 + inactive` (unsigned, wrapping as in C).
    pub fn overhead(&self) -> u32 {
        (self.active << 8).wrapping_add(self.inactive)
    }
}
