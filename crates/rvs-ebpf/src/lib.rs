//! Pieces shared by the rvs XDP programs: bounds-checked header access.
#![no_std]
#![feature(core_intrinsics)]
#![allow(internal_features)]

pub mod atomic;
pub mod packet;
