//! The authenticated envelope, an rvs extension (off unless a key is configured; without it the
//! datagrams are the kernel's, byte for byte). With a key, every datagram is the IPVS message
//! followed by a trailer:
//!
//! ```text
//! | IPVS v1 message (its header's size covers only it) | "RVSA" | seq (BE64) | HMAC-SHA256 (32) |
//! ```
//!
//! The HMAC covers the sender's address, the message, the magic and the sequence number: a
//! datagram replayed from another address than its sender's does not open, and one replayed
//! from the sender's own address is caught by its sequence number. Sequence numbers start from
//! the sender's wall clock in microseconds and grow by one per datagram, so they keep growing
//! across a restart of the sender; a receiver keeps the highest it accepted from each sender and
//! drops anything not above it (a replay). A kernel IPVS receiver drops such datagrams (their
//! size does not match the header), which is what keyed sync wants.

use std::{collections::HashMap, net::IpAddr};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

const MAGIC: &[u8; 4] = b"RVSA";
const MAC_LEN: usize = 32;
/// Bytes the envelope adds to a message.
pub const TRAILER_LEN: usize = MAGIC.len() + 8 + MAC_LEN;

/// Why an envelope was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthReject {
    /// No trailer (a plain message while a key is configured).
    Unauthenticated,
    /// The HMAC does not match: another key, or a changed message.
    BadMac,
    /// A sequence number not above the last one accepted from that sender.
    Replayed,
}

impl AuthReject {
    pub fn name(self) -> &'static str {
        match self {
            AuthReject::Unauthenticated => "unauthenticated",
            AuthReject::BadMac => "bad_mac",
            AuthReject::Replayed => "replayed",
        }
    }
}

/// The shared key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key of at least 16 bytes (a passphrase file's contents, trailing newline removed).
    pub fn new(bytes: &[u8]) -> Result<Key, String> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if bytes.len() < 16 {
            return Err(format!(
                "a sync key must have at least 16 bytes, this one has {}",
                bytes.len()
            ));
        }
        Ok(Key(bytes.to_vec()))
    }

    fn mac(&self, sender: IpAddr, message: &[u8], seq: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        match sender {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        mac.update(message);
        mac.update(MAGIC);
        mac.update(&seq.to_be_bytes());
        mac
    }

    /// `message`, sent from `sender`, with its trailer.
    pub fn seal(&self, sender: IpAddr, message: &[u8], seq: u64) -> Vec<u8> {
        let tag = self.mac(sender, message, seq).finalize().into_bytes();
        let mut out = Vec::with_capacity(message.len() + TRAILER_LEN);
        out.extend_from_slice(message);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&tag);
        out
    }

    /// The message and sequence number of a sealed datagram that came from `sender`, if its
    /// HMAC is right.
    pub fn open<'a>(
        &self,
        sender: IpAddr,
        datagram: &'a [u8],
    ) -> Result<(&'a [u8], u64), AuthReject> {
        let Some(split) = datagram.len().checked_sub(TRAILER_LEN) else {
            return Err(AuthReject::Unauthenticated);
        };
        let (message, trailer) = datagram.split_at(split);
        if &trailer[..4] != MAGIC {
            return Err(AuthReject::Unauthenticated);
        }
        let seq = u64::from_be_bytes(trailer[4..12].try_into().expect("8 bytes"));
        // verify_slice compares in constant time.
        self.mac(sender, message, seq)
            .verify_slice(&trailer[12..])
            .map_err(|_| AuthReject::BadMac)?;
        Ok((message, seq))
    }
}

/// The next sequence numbers of a sender.
pub struct Sequence(u64);

impl Sequence {
    /// Starts at the wall clock in microseconds, so that a restarted sender is not taken for a
    /// replay.
    pub fn new() -> Sequence {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Sequence(now.as_micros() as u64)
    }

    pub fn advance(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

impl Default for Sequence {
    fn default() -> Self {
        Sequence::new()
    }
}

/// The highest sequence number accepted from each sender.
#[derive(Default)]
pub struct ReplayGuard(HashMap<IpAddr, u64>);

impl ReplayGuard {
    /// Accepts `seq` from `sender` if it is above the last one accepted.
    pub fn accept(&mut self, sender: IpAddr, seq: u64) -> Result<(), AuthReject> {
        let last = self.0.entry(sender).or_insert(0);
        if seq <= *last {
            return Err(AuthReject::Replayed);
        }
        *last = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"a shared secret of the pair\n").unwrap()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 3));

    #[test]
    fn sealed_messages_open_with_the_same_key_only() {
        let sealed = key().seal(A, b"message", 7);
        assert_eq!(sealed.len(), 7 + TRAILER_LEN);
        assert_eq!(key().open(A, &sealed), Ok((&b"message"[..], 7)));
        let other = Key::new(b"another secret of sixteen").unwrap();
        assert_eq!(other.open(A, &sealed), Err(AuthReject::BadMac));
    }

    #[test]
    fn a_message_replayed_from_another_address_does_not_open() {
        let sealed = key().seal(A, b"message", 7);
        assert_eq!(key().open(B, &sealed), Err(AuthReject::BadMac));
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(key().open(v6, &sealed), Err(AuthReject::BadMac));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let sealed = key().seal(A, b"message", 7);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key().open(A, &bad).is_err(), "byte {i}");
        }
        assert_eq!(key().open(A, b"plain"), Err(AuthReject::Unauthenticated));
        assert_eq!(
            key().open(A, &[0u8; TRAILER_LEN + 3]),
            Err(AuthReject::Unauthenticated)
        );
    }

    #[test]
    fn replays_are_refused_per_sender() {
        let mut g = ReplayGuard::default();
        let a: IpAddr = "198.18.0.2".parse().unwrap();
        let b: IpAddr = "198.18.0.3".parse().unwrap();
        assert_eq!(g.accept(a, 10), Ok(()));
        assert_eq!(g.accept(a, 10), Err(AuthReject::Replayed));
        assert_eq!(g.accept(a, 9), Err(AuthReject::Replayed));
        assert_eq!(g.accept(b, 5), Ok(()));
        assert_eq!(g.accept(a, 11), Ok(()));
    }

    #[test]
    fn short_keys_are_refused_and_sequences_grow() {
        assert!(Key::new(b"short").is_err());
        let mut s = Sequence::new();
        let first = s.advance();
        assert!(s.advance() > first);
        assert!(Sequence::new().advance() > 1_600_000_000_000_000);
    }
}
