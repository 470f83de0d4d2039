//! Types shared by the XDP data plane (`rvs-ebpf`, no_std, BPF target) and the control plane (`rvs`).
//!
//! Every map key and value is `#[repr(C)]` with explicit padding, so both sides agree on the layout
//! byte for byte. Addresses are stored as four 32-bit words in network byte order (IPv4 in word 0,
//! the rest zero), ports in network byte order, exactly as they sit in the packet.
#![no_std]

pub mod conn;
pub mod csum;
pub mod dest;
pub mod hash;
pub mod maps;
pub mod mark;
pub mod programs;
pub mod service;
pub mod stats;
pub mod sync;
pub mod tcp_state;

/// Address family as stored in keys (values match Linux AF_INET / AF_INET6).
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// IP protocol numbers used in keys.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// Implements `aya::Pod` for the listed types when the `user` feature is on.
macro_rules! user_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is #[repr(C)], made only of integers and integer arrays, with all
            // padding spelled out as fields, so every bit pattern is valid.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use user_pod;
