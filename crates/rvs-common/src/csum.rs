//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624, eqn. 3).
//!
//! All values are taken as the 16-bit words they are in the packet, read in the same byte order as
//! the checksum field itself; the one's-complement sum does not depend on that order.

/// Folds a 32-bit one's-complement accumulator to 16 bits (two folds always suffice).
#[inline(always)]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum after one 16-bit word of the covered data changed from `old` to `new`.
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    !fold((!check) as u32 + (!old) as u32 + new as u32)
}

/// The checksum after a 32-bit value (two words) changed from `old` to `new`.
#[inline(always)]
pub fn replace32(check: u16, old: u32, new: u32) -> u16 {
    let sum =
        (!check) as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(sum)
}

/// The checksum after a 128-bit address (four words, in packet byte order) changed.
#[inline(always)]
pub fn replace128(check: u16, old: &[u32; 4], new: &[u32; 4]) -> u16 {
    let mut c = check;
    for i in 0..4 {
        c = replace32(c, u32::from_be(old[i]), u32::from_be(new[i]));
    }
    c
}

/// The checksum of an IPv4 header given as ten 16-bit words (checksum field zero).
#[inline(always)]
pub fn ipv4_header(words: &[u16; 10]) -> u16 {
    let mut sum = 0u32;
    for w in words {
        sum += *w as u32;
    }
    !fold(sum)
}

/// Plain RFC 1071 checksum of a byte slice (big-endian words), for tests and the control plane.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        if sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ttl: u8) -> [u8; 20] {
        let mut h = [
            0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, ttl, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 100,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn ttl_decrement_matches_full_recompute() {
        for ttl in [1u8, 2, 64, 128, 255] {
            let h = header(ttl);
            let old = u16::from_be_bytes([h[8], h[9]]);
            let new = u16::from_be_bytes([ttl - 1, h[9]]);
            let inc = replace16(u16::from_be_bytes([h[10], h[11]]), old, new);
            assert_eq!(
                inc,
                u16::from_be_bytes(header(ttl - 1)[10..12].try_into().unwrap())
            );
        }
    }

    #[test]
    fn address_replace_matches_full_recompute() {
        let mut h = header(64);
        let check = u16::from_be_bytes([h[10], h[11]]);
        let old = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new = u32::from_be_bytes([198, 19, 255, 7]);
        let inc = replace32(check, old, new);
        h[16..20].copy_from_slice(&new.to_be_bytes());
        h[10] = 0;
        h[11] = 0;
        assert_eq!(inc, checksum(&h));
    }

    #[test]
    fn valid_header_sums_to_zero() {
        assert_eq!(checksum(&header(17)), 0);
    }
}
