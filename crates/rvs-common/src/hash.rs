//! The hashes IPVS schedules with, shared by the data plane and the control plane so both compute
//! the same buckets: the kernel's `hash_32`, and `hsiphash` as a 64-bit kernel computes it
//! (SipHash-1-3 with 64-bit lanes, output truncated to 32 bits), used by mh.

pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// hash_32(v, bits): multiply by the golden ratio, keep the top `bits` bits.
#[inline(always)]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// IPVS's fold of an address to 32 bits, host order: IPv4 as is, IPv6 the XOR of its four words.
/// `words` hold the address bytes in wire order (as in the map keys).
#[inline(always)]
pub fn fold_words(words: &[u32; 4], ipv6: bool) -> u32 {
    let f = if ipv6 {
        words[0] ^ words[1] ^ words[2] ^ words[3]
    } else {
        words[0]
    };
    u32::from_be(f)
}

/// The two hsiphash keys of ip_vs_mh.c (each u32 constant zero-extended into both key words).
pub const MH_KEY1: u64 = 2_654_435_761;
pub const MH_KEY2: u64 = 2_654_446_892;

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// hsiphash of the 4 bytes of `value` (little-endian, as a u32 lies in memory on x86-64) with
/// the key (k, k), as 64-bit kernels compute it.
#[inline(always)]
pub fn hsiphash_u32(value: u32, k: u64) -> u32 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ k,
        0x646f_7261_6e64_6f6d ^ k,
        0x6c79_6765_6e65_7261 ^ k,
        0x7465_6462_7974_6573 ^ k,
    ];
    let b = (4u64 << 56) | value as u64;
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    (v[0] ^ v[1] ^ v[2] ^ v[3]) as u32
}

/// The Maglev table size (CONFIG_IP_VS_MH_TAB_INDEX 12, the kernel's default).
pub const MH_TAB_SIZE: u32 = 4093;
/// IP_VS_MH_TAB_BITS: INDEX / 2, used only to scale down large weights.
pub const MH_TAB_BITS: u32 = 6;

/// The mh hash of (offset, port, address): hsiphash of their u32 sum.
#[inline(always)]
pub fn mh_hash(addr_fold: u32, port: u16, offset: u32, key: u64) -> u32 {
    hsiphash_u32(
        offset.wrapping_add(port as u32).wrapping_add(addr_fold),
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the kernel's own transcription check (rvs notes: ipvs-vectors.md).
    #[test]
    fn hash_32_vectors() {
        for (v, h8, h10) in [
            (0x0000_0001u32, 97, 391),
            (0x0a00_0001, 39, 159),
            (0x0a00_303a, 134, 538),
            (0xc0a8_0151, 23, 94),
            (0xffff_ffff, 158, 632),
            (0x2001_0db9, 63, 252),
        ] {
            assert_eq!(hash_32(v, 8), h8, "{v:#x}");
            assert_eq!(hash_32(v, 10), h10, "{v:#x}");
        }
    }

    #[test]
    fn hsiphash_vectors() {
        for (v, k1, k2) in [
            (0x0000_0000u32, 0x1d5a_77c2u32, 0xf882_433fu32),
            (0x0000_0001, 0x16ec_66b2, 0x8210_aad1),
            (0x0a00_0001, 0x0308_0ce4, 0x48f9_d0c1),
            (0xc0a8_0151, 0xcd25_7c3f, 0x932e_155f),
            (0xffff_ffff, 0x22c5_d719, 0xf75a_0f5d),
        ] {
            assert_eq!(hsiphash_u32(v, MH_KEY1), k1, "{v:#x}");
            assert_eq!(hsiphash_u32(v, MH_KEY2), k2, "{v:#x}");
        }
    }

    #[test]
    fn ipv6_fold() {
        // 2001:db8::1 -> 0x20010db9
        let words = [
            u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]),
            0,
            0,
            u32::from_ne_bytes([0, 0, 0, 1]),
        ];
        assert_eq!(fold_words(&words, true), 0x2001_0db9);
    }
}
