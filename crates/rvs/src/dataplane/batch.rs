//! Reading a hash map in batches (BPF_MAP_LOOKUP_BATCH): one system call per few thousand entries
//! instead of two per entry, so walking a connection table of millions of flows stays cheap.
//! aya 0.14 has no batch operations, so the call is made here directly.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
    // The union is larger than this member; the kernel checks that unused bytes are zero.
    _rest: [u64; 8],
}

/// Calls `f` on every (key, value) of the hash map `fd`, `chunk` entries per system call.
/// Entries changed during the walk may be seen in either state or, if moved, missed or repeated.
pub fn for_each<K: Pod + Default, V: Pod + Default>(
    fd: BorrowedFd<'_>,
    chunk: u32,
    mut f: impl FnMut(&K, &V),
) -> std::io::Result<()> {
    let mut keys = vec![K::default(); chunk as usize];
    let mut values = vec![V::default(); chunk as usize];
    // For hash maps the batch cursor is a bucket index.
    let mut cursor: u32 = 0;
    let mut first = true;
    loop {
        let mut next: u32 = 0;
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const cursor as u64 },
            out_batch: &raw mut next as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk,
            map_fd: fd.as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the attribute points at buffers of `chunk` keys and values and at two u32s, all
        // alive for the call; the size passed is the attribute's.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let err = (rc < 0).then(std::io::Error::last_os_error);
        let n = attr.count as usize;
        for i in 0..n.min(chunk as usize) {
            f(&keys[i], &values[i]);
        }
        match err {
            None => {}
            // ENOENT: the walk reached the end (possibly with a last partial batch above).
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Some(e) => return Err(e),
        }
        cursor = next;
        first = false;
    }
}
