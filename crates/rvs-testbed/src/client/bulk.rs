//! The client side of bulk transfers (see [`crate::bulk`]): a download checked byte by byte and
//! an upload checked by the server's hash, each within a time limit.

use std::{
    hash::BuildHasher,
    io::{self, BufRead, BufReader, ErrorKind, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::connect;
use crate::{
    Netns,
    bulk::{Checker, Fnv1a64, Pattern, Request},
};

/// How long a transfer may move nothing before the client gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The size of the pieces sent and read.
const CHUNK: usize = 64 * 1024;

/// How long a transfer of `len` bytes may take: 10 s plus 1 s per MiB, about a minute for
/// 50 MB. Loopback-fast links do hundreds of MiB/s; this only catches a transfer gone wrong.
pub fn time_limit(len: u64) -> Duration {
    Duration::from_secs(10) + Duration::from_secs_f64(len as f64 / f64::from(1 << 20))
}

/// Downloads `len` bytes from the test TCP server at `ip:port` from `ns`, checks every byte
/// against the pattern and returns the name of the server that sent them.
pub fn bulk_download(ns: &Netns, ip: IpAddr, port: u16, len: u64) -> Result<String> {
    let seed = fresh_seed();
    let addr = SocketAddr::new(ip, port);
    download(ns, addr, len, seed).with_context(|| {
        format!(
            "bulk download of {len} bytes from {addr} to {} (seed {seed})",
            ns.name()
        )
    })
}

/// Uploads `len` bytes of the pattern from `ns` to the test TCP server at `ip:port`, checks the
/// hash the server computed of what it got, and returns the server's name.
pub fn bulk_upload(ns: &Netns, ip: IpAddr, port: u16, len: u64) -> Result<String> {
    let seed = fresh_seed();
    let addr = SocketAddr::new(ip, port);
    upload(ns, addr, len, seed).with_context(|| {
        format!(
            "bulk upload of {len} bytes from {} to {addr} (seed {seed})",
            ns.name()
        )
    })
}

fn download(ns: &Netns, addr: SocketAddr, len: u64, seed: u64) -> Result<String> {
    let mut clock = Clock::new(connect(ns, addr)?, len);
    let request = format!("{}\n", Request::Send { len, seed }.line());
    clock.arm()?;
    (clock.stream.write_all(request.as_bytes())).context("cannot send the request")?;
    let mut reader = BufReader::with_capacity(CHUNK, clock.stream.try_clone()?);
    let mut name = String::new();
    clock.arm()?;
    let got = reader.read_line(&mut name);
    clock.waited(got, 0)?;
    let Some(name) = name.strip_suffix('\n') else {
        bail!("the server closed the connection without answering");
    };
    let mut checker = Checker::new(seed, len);
    let mut buf = vec![0; CHUNK];
    // Reads past `len` too, to catch a stream that is too long.
    while !checker.failed() {
        clock.arm_after(checker.received())?;
        let got = reader.read(&mut buf);
        match clock.waited(got, checker.received())? {
            0 => break,
            n => checker.update(&buf[..n]),
        }
    }
    checker
        .check()
        .with_context(|| format!("server {name} sent a wrong stream"))?;
    Ok(name.to_owned())
}

fn upload(ns: &Netns, addr: SocketAddr, len: u64, seed: u64) -> Result<String> {
    let clock = Clock::new(connect(ns, addr)?, len);
    let mut stream = clock.stream.try_clone()?;
    let request = format!("{}\n", Request::Recv { len, seed }.line());
    clock.arm()?;
    (stream.write_all(request.as_bytes())).context("cannot send the request")?;
    let (mut pattern, mut hash) = (Pattern::new(seed), Fnv1a64::new());
    let mut buf = vec![0; CHUNK];
    let mut sent = 0;
    while sent < len {
        let n = usize::try_from(len - sent).map_or(CHUNK, |n| n.min(CHUNK));
        pattern.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        let mut piece = &buf[..n];
        while !piece.is_empty() {
            clock.arm_after(sent)?;
            let wrote = stream.write(piece);
            match clock.waited(wrote, sent)? {
                0 => bail!("the connection closed after {sent} of {len} bytes"),
                k => {
                    piece = &piece[k..];
                    sent += k as u64;
                }
            }
        }
    }
    let mut reply = String::new();
    clock.arm()?;
    let got = BufReader::new(stream).read_line(&mut reply);
    clock.waited(got, sent)?;
    check_receipt(reply.trim_end(), len, hash.value())
}

/// Checks the server's `<name> <hash> <first-bad>` answer to an upload.
fn check_receipt(reply: &str, len: u64, sent_hash: u64) -> Result<String> {
    let fields: Vec<&str> = reply.split(' ').collect();
    let [name, hash, first_bad] = fields[..] else {
        bail!("the server answered {reply:?} to all {len} bytes");
    };
    let hash =
        u64::from_str_radix(hash, 16).with_context(|| format!("the server answered {reply:?}"))?;
    if hash == sent_hash && first_bad == "-" {
        return Ok(name.to_owned());
    }
    let where_ = match first_bad {
        "-" => "every byte it got matched the pattern, so the stream was cut short".to_owned(),
        offset => format!("its first wrong byte was at offset {offset}"),
    };
    bail!("server {name} got data hashing to {hash:016x}, not {sent_hash:016x}: {where_}")
}

/// The connection and the time limits of one transfer.
struct Clock {
    stream: TcpStream,
    len: u64,
    limit: Duration,
    deadline: Instant,
}

impl Clock {
    fn new(stream: TcpStream, len: u64) -> Self {
        let limit = time_limit(len);
        Self {
            stream,
            len,
            limit,
            deadline: Instant::now() + limit,
        }
    }

    fn arm(&self) -> Result<()> {
        self.arm_after(0)
    }

    /// Bounds the next read or write by the stall timeout and the deadline.
    fn arm_after(&self, moved: u64) -> Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(self.late(moved));
        }
        let timeout = Some(left.min(STALL_TIMEOUT));
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        Ok(())
    }

    /// The result of a read or write, a timeout told apart from the deadline.
    fn waited<T>(&self, result: io::Result<T>, moved: u64) -> Result<T> {
        match result {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= self.deadline {
                    bail!(self.late(moved));
                }
                bail!(
                    "nothing moved for {STALL_TIMEOUT:?} after {moved} of {} bytes",
                    self.len
                )
            }
            Err(e) => Err(e).with_context(|| format!("after {moved} of {} bytes", self.len)),
            Ok(value) => Ok(value),
        }
    }

    fn late(&self, moved: u64) -> String {
        let len = self.len;
        format!(
            "not done within {:?}: {moved} of {len} bytes moved",
            self.limit
        )
    }
}

/// A seed no other transfer of this process uses, so a stream mixed up with another is caught.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::hash::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_checked() {
        assert_eq!(
            check_receipt("rs0 00000000000000ff -", 5, 255).unwrap(),
            "rs0"
        );
        let err = check_receipt("rs0 00000000000000fe 17", 5, 255).unwrap_err();
        assert!(err.to_string().contains("offset 17"), "{err}");
        let err = check_receipt("rs0 00000000000000fe -", 5, 255).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        assert!(check_receipt("", 5, 255).is_err());
        assert!(check_receipt("rs0 zz -", 5, 255).is_err());
    }

    #[test]
    fn the_time_limit_grows_with_the_size() {
        assert_eq!(time_limit(0), Duration::from_secs(10));
        let fifty_mb = time_limit(50_000_000);
        assert!(fifty_mb > Duration::from_secs(55) && fifty_mb < Duration::from_secs(60));
    }
}
