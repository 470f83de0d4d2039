//! Bulk transfers for integrity tests: a deterministic pseudo-random byte stream, a 64-bit hash,
//! and a checker that names the first wrong byte.
//!
//! The test TCP server ([`crate::TcpServer`]) speaks a bulk protocol beside its line echo; the
//! first line of a connection chooses:
//!
//! - `SEND <len> [<seed>]`: the server answers `<name>\n`, then the first `len` bytes of
//!   [`Pattern`]`(seed)`, then closes.
//! - `RECV <len> [<seed>]` followed by `len` bytes: the server answers
//!   `<name> <hash> <first-bad>\n`: the [`Fnv1a64`] of what it read (16 hex digits) and the
//!   offset of the first byte that differs from `Pattern(seed)`, or `-`.
//!
//! `seed` defaults to `len`. [`crate::client::bulk_download`] and
//! [`crate::client::bulk_upload`] are the client side.

use anyhow::{Result, bail};

/// The bytes a bulk transfer carries: the outputs of SplitMix64 from `seed`, little-endian,
/// positionable at any offset. Different seeds give unrelated streams, so a stream spliced
/// from two transfers is caught.
#[derive(Clone, Debug)]
pub struct Pattern {
    seed: u64,
    offset: u64,
}

impl Pattern {
    /// The stream for `seed`, at its start.
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0 }
    }

    /// How many bytes it has produced.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Fills `buf` with the next `buf.len()` bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let skip = (self.offset % 8) as usize;
            let word = splitmix64(self.seed, self.offset / 8).to_le_bytes();
            let n = (8 - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
            done += n;
            self.offset += n as u64;
        }
    }
}

/// Output `index` of SplitMix64 seeded with `seed`.
fn splitmix64(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit FNV-1a hash. Not cryptographic, but every single-byte change changes it (each
/// step is a bijection of the state), and it depends on the order of the bytes.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of nothing yet.
    pub fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    /// Hashes `data` after what came before.
    pub fn update(&mut self, data: &[u8]) {
        for &byte in data {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    /// The hash of everything so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a received stream against the first `len` bytes of [`Pattern`]`(seed)`, piece by
/// piece, and hashes it.
#[derive(Debug)]
pub struct Checker {
    seed: u64,
    len: u64,
    expected: Pattern,
    scratch: Vec<u8>,
    hash: Fnv1a64,
    first_bad: Option<Mismatch>,
}

/// The first wrong byte of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mismatch {
    offset: u64,
    expected: u8,
    got: u8,
}

impl Checker {
    /// A checker expecting `len` bytes of `Pattern::new(seed)`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            seed,
            len,
            expected: Pattern::new(seed),
            scratch: Vec::new(),
            hash: Fnv1a64::new(),
            first_bad: None,
        }
    }

    /// Takes the next piece of the stream.
    pub fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
        let start = self.expected.offset();
        // Past the expected length there is nothing to compare with; `check` reports the excess.
        let comparable = usize::try_from(self.len.saturating_sub(start))
            .map_or(data.len(), |left| left.min(data.len()));
        self.scratch.resize(comparable, 0);
        self.expected.fill(&mut self.scratch);
        // Bytes past the expected length count as received, for the length check.
        self.expected.offset = start + data.len() as u64;
        if self.first_bad.is_none() && self.scratch[..] != data[..comparable] {
            let i = (self.scratch.iter().zip(data))
                .position(|(e, g)| e != g)
                .unwrap_or_default();
            self.first_bad = Some(Mismatch {
                offset: start + i as u64,
                expected: self.scratch[i],
                got: data[i],
            });
        }
    }

    /// How many bytes it has taken.
    pub fn received(&self) -> u64 {
        self.expected.offset()
    }

    /// The [`Fnv1a64`] of what it has taken.
    pub fn hash(&self) -> u64 {
        self.hash.value()
    }

    /// The offset of the first byte that differs from the pattern, if one did.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_bad.map(|m| m.offset)
    }

    /// Whether the stream has gone wrong already: a wrong byte or too many of them.
    pub fn failed(&self) -> bool {
        self.first_bad.is_some() || self.received() > self.len
    }

    /// Fails, saying how, unless exactly the expected stream was taken.
    pub fn check(&self) -> Result<()> {
        let (len, seed, got) = (self.len, self.seed, self.received());
        if let Some(m) = self.first_bad {
            bail!(
                "byte {} of {len} is {:#04x} instead of {:#04x} (pattern seed {seed})",
                m.offset,
                m.got,
                m.expected
            );
        }
        if got < len {
            bail!("the stream ended after {got} of {len} bytes");
        }
        if got > len {
            bail!("{got} bytes arrived where {len} were expected");
        }
        Ok(())
    }
}

/// A bulk request, the first line of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// The server sends.
    Send { len: u64, seed: u64 },
    /// The server receives.
    Recv { len: u64, seed: u64 },
}

impl Request {
    /// The request in `line`, or `None` if it is not one (for the line echo).
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split(' ');
        let verb = words.next()?;
        let len = words.next()?.parse().ok()?;
        let seed = match words.next() {
            Some(seed) => seed.parse().ok()?,
            None => len,
        };
        if words.next().is_some() {
            return None;
        }
        match verb {
            "SEND" => Some(Self::Send { len, seed }),
            "RECV" => Some(Self::Recv { len, seed }),
            _ => None,
        }
    }

    /// The line that asks for it.
    pub fn line(self) -> String {
        match self {
            Self::Send { len, seed } => format!("SEND {len} {seed}"),
            Self::Recv { len, seed } => format!("RECV {len} {seed}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        Pattern::new(seed).fill(&mut buf);
        buf
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        let hash = |data: &[u8]| {
            let mut h = Fnv1a64::new();
            h.update(data);
            h.value()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
        let mut split = Fnv1a64::new();
        split.update(b"foo");
        split.update(b"bar");
        assert_eq!(split.value(), hash(b"foobar"));
        assert_ne!(hash(b"raboof"), hash(b"foobar"));
    }

    #[test]
    fn the_pattern_is_the_same_however_it_is_cut() {
        let whole = pattern(7, 1000);
        let mut p = Pattern::new(7);
        let mut pieces = Vec::new();
        for n in [1, 3, 8, 13, 0, 975] {
            let mut piece = vec![0; n];
            p.fill(&mut piece);
            pieces.extend(piece);
        }
        assert_eq!(pieces, whole);
        assert_ne!(pattern(8, 1000), whole);
        // Not a constant or a short cycle.
        assert!(
            whole
                .windows(8)
                .step_by(8)
                .skip(1)
                .all(|w| w != &whole[..8])
        );
    }

    #[test]
    fn an_intact_stream_passes_in_any_pieces() {
        let data = pattern(42, 100_000);
        let mut checker = Checker::new(42, 100_000);
        for piece in data.chunks(4099) {
            checker.update(piece);
        }
        checker.check().unwrap();
        let mut whole = Fnv1a64::new();
        whole.update(&data);
        assert_eq!(checker.hash(), whole.value());
    }

    #[test]
    fn a_corrupted_stream_names_its_first_bad_byte() {
        let mut data = pattern(42, 100_000);
        data[54_321] ^= 0x10;
        data[60_000] ^= 0x01;
        let mut checker = Checker::new(42, 100_000);
        for piece in data.chunks(1000) {
            checker.update(piece);
        }
        assert!(checker.failed());
        assert_eq!(checker.first_mismatch(), Some(54_321));
        let err = checker.check().unwrap_err().to_string();
        assert!(err.contains("byte 54321 of 100000"), "{err}");
    }

    #[test]
    fn streams_of_the_wrong_length_or_seed_fail() {
        let data = pattern(5, 1000);
        let mut short = Checker::new(5, 1001);
        short.update(&data);
        assert!(!short.failed());
        let err = short.check().unwrap_err().to_string();
        assert!(err.contains("after 1000 of 1001"), "{err}");

        let mut long = Checker::new(5, 999);
        long.update(&data);
        assert!(long.failed() && long.first_mismatch().is_none());
        let err = long.check().unwrap_err().to_string();
        assert!(err.contains("1000 bytes arrived where 999"), "{err}");

        let mut other = Checker::new(6, 1000);
        other.update(&data);
        assert!(other.check().is_err());

        // A stream with a piece swapped for an equally long piece of itself.
        let mut spliced = data.clone();
        spliced[500..600].copy_from_slice(&data[0..100]);
        let mut checker = Checker::new(5, 1000);
        checker.update(&spliced);
        assert_eq!(checker.first_mismatch(), Some(500));
    }

    #[test]
    fn requests_parse_and_print() {
        let send = Request::Send { len: 10, seed: 3 };
        assert_eq!(Request::parse(&send.line()), Some(send));
        assert_eq!(
            Request::parse("RECV 5"),
            Some(Request::Recv { len: 5, seed: 5 })
        );
        for line in [
            "SEND",
            "SEND x",
            "SEND 1 2 3",
            "GET / HTTP/1.0",
            "send 1",
            "RECV -1",
        ] {
            assert_eq!(Request::parse(line), None, "{line}");
        }
    }
}
