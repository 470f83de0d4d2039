//! The server side of bulk transfers (see [`crate::bulk`]): sending or taking a stream of
//! [`Pattern`] bytes on a connection whose first line asked for it.

use std::{
    io::{self, ErrorKind, Read, Write},
    net::{Shutdown, TcpStream},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::TICK;
use crate::bulk::{Checker, Pattern, Request};

/// How long a transfer may make no progress before the server gives up on its client.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The size of the pieces sent and read.
const CHUNK: usize = 64 * 1024;

/// Serves `request` as `name`. `reader` has the rest of the connection, the bytes after the
/// request line included; `writer` is the same connection, with a read timeout of [`TICK`].
pub fn serve(
    request: Request,
    name: &str,
    reader: &mut impl Read,
    writer: &mut TcpStream,
    stop: &AtomicBool,
) -> io::Result<()> {
    // Short, so that a blocked write wakes up to look at `stop`.
    writer.set_write_timeout(Some(TICK))?;
    match request {
        Request::Send { len, seed } => {
            write_all(writer, format!("{name}\n").as_bytes(), stop)?;
            let mut pattern = Pattern::new(seed);
            let mut buf = vec![0; CHUNK];
            while pattern.offset() < len {
                let n = usize::try_from(len - pattern.offset()).map_or(CHUNK, |n| n.min(CHUNK));
                pattern.fill(&mut buf[..n]);
                write_all(writer, &buf[..n], stop)?;
            }
            writer.shutdown(Shutdown::Write)
        }
        Request::Recv { len, seed } => {
            let mut checker = Checker::new(seed, len);
            let mut buf = vec![0; CHUNK];
            while checker.received() < len {
                let n = usize::try_from(len - checker.received()).map_or(CHUNK, |n| n.min(CHUNK));
                match read_some(reader, &mut buf[..n], stop)? {
                    0 => break,
                    n => checker.update(&buf[..n]),
                }
            }
            let first_bad = checker
                .first_mismatch()
                .map_or_else(|| "-".to_owned(), |offset| offset.to_string());
            let reply = format!("{name} {:016x} {first_bad}\n", checker.hash());
            write_all(writer, reply.as_bytes(), stop)
        }
    }
}

fn write_all(writer: &mut TcpStream, mut buf: &[u8], stop: &AtomicBool) -> io::Result<()> {
    let mut progress = Instant::now();
    while !buf.is_empty() {
        match writer.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                progress = Instant::now();
            }
            Err(e) if waits(&e) => give_up_if(stop, progress)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads at least one byte, or 0 at the end of the stream.
fn read_some(reader: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> io::Result<usize> {
    let since = Instant::now();
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if waits(&e) => give_up_if(stop, since)?,
            Err(e) => return Err(e),
        }
    }
}

/// A socket timeout or an interruption: nothing happened yet.
fn waits(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn give_up_if(stop: &AtomicBool, progress: Instant) -> io::Result<()> {
    if stop.load(Ordering::Relaxed) {
        return Err(io::Error::new(ErrorKind::Interrupted, "server stopped"));
    }
    if progress.elapsed() > STALL_TIMEOUT {
        return Err(io::Error::new(ErrorKind::TimedOut, "client stalled"));
    }
    Ok(())
}
