//! The real servers' connection counters, memory-mapped from the BPF_F_MMAPABLE array so that the
//! control plane changes them with the same atomic adds the XDP program uses. Counting expired
//! connections any other way would race with the data plane's updates and drift.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Result, bail};
use aya::maps::MapData;
use rvs_common::dest::DestConns;

/// A shared mapping of the DEST_CONNS array.
pub struct SharedConns {
    base: NonNull<DestConns>,
    len: u32,
    bytes: usize,
    _map: MapData,
}

// SAFETY: the memory is a kernel-owned shared mapping accessed only through atomics.
unsafe impl Send for SharedConns {}
// SAFETY: as above.
unsafe impl Sync for SharedConns {}

/// A counter of a dest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Active,
    Inactive,
    Persist,
    Overloaded,
}

impl SharedConns {
    /// Maps the array `map` (created with BPF_F_MMAPABLE, value `DestConns`).
    pub fn new(map: MapData) -> Result<SharedConns> {
        let info = map.info()?;
        if info.value_size() as usize != size_of::<DestConns>() {
            bail!("DEST_CONNS has values of {} bytes", info.value_size());
        }
        let len = info.max_entries();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let bytes = (len as usize * size_of::<DestConns>()).div_ceil(page) * page;
        // SAFETY: mapping a BPF array's values, shared with the kernel, for its whole size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            bail!("mmap of DEST_CONNS: {}", std::io::Error::last_os_error());
        }
        Ok(SharedConns {
            base: NonNull::new(p as *mut DestConns).expect("mmap returned null"),
            len,
            bytes,
            _map: map,
        })
    }

    fn field(&self, id: u32, f: Field) -> Option<&AtomicU64> {
        if id >= self.len {
            return None;
        }
        // SAFETY: in bounds of the mapping; u64 fields are 8-byte aligned (values are 32 bytes).
        unsafe {
            let v = self.base.as_ptr().add(id as usize);
            let p = match f {
                Field::Active => &raw mut (*v).active,
                Field::Inactive => &raw mut (*v).inactive,
                Field::Persist => &raw mut (*v).persist,
                Field::Overloaded => &raw mut (*v).overloaded,
            };
            Some(AtomicU64::from_ptr(p))
        }
    }

    pub fn get(&self, id: u32) -> DestConns {
        let load = |f| self.field(id, f).map_or(0, |a| a.load(Ordering::Relaxed));
        DestConns {
            active: load(Field::Active),
            inactive: load(Field::Inactive),
            persist: load(Field::Persist),
            overloaded: load(Field::Overloaded),
        }
    }

    /// Adds `delta` (wrapping; pass `u64::MAX` to subtract one).
    pub fn add(&self, id: u32, f: Field, delta: u64) {
        if let Some(a) = self.field(id, f) {
            a.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub fn set(&self, id: u32, f: Field, value: u64) {
        if let Some(a) = self.field(id, f) {
            a.store(value, Ordering::Relaxed);
        }
    }

    /// Zeroes every counter of `id` (a fresh real server).
    pub fn zero(&self, id: u32) {
        for f in [
            Field::Active,
            Field::Inactive,
            Field::Persist,
            Field::Overloaded,
        ] {
            self.set(id, f, 0);
        }
    }
}

impl Drop for SharedConns {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.base.as_ptr() as *mut _, self.bytes) };
    }
}

/// Live counts (clamped at zero: a reader may catch one half of a move between counters).
pub fn live(v: u64) -> u32 {
    (v as i64).clamp(0, u32::MAX as i64) as u32
}
