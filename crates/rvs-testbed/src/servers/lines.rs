//! Reading lines from a socket that has a read timeout, so that the reader can give up when its
//! server stops.

use std::{
    io::{self, BufRead, BufReader, ErrorKind, Read},
    sync::atomic::{AtomicBool, Ordering},
};

/// The longest line a server accepts; a client sending more is cut off.
const MAX_LINE: usize = 64 * 1024;

pub struct LineReader<R> {
    inner: BufReader<R>,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
        }
    }

    /// The connection after the lines read so far, buffered bytes first.
    pub fn rest(&mut self) -> &mut BufReader<R> {
        &mut self.inner
    }

    /// The next line without its `\n` or `\r\n`; `None` at end of stream or once `stop` is set.
    pub fn next_line(&mut self, stop: &AtomicBool) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // read_until returns Ok only at a newline or at the end of the stream; on a timeout it
            // keeps what it read in `buf`, so the next call continues the line.
            let room = (MAX_LINE + 1).saturating_sub(buf.len()) as u64;
            match (&mut self.inner).take(room).read_until(b'\n', &mut buf) {
                Ok(0) if buf.is_empty() => return Ok(None),
                Ok(_) if buf.len() > MAX_LINE => {
                    return Err(io::Error::new(ErrorKind::InvalidData, "line too long"));
                }
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some(String::from_utf8_lossy(line).into_owned()))
    }
}
