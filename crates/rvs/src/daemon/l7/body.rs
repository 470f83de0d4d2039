//! A connection with its read buffer, and message bodies relayed from one connection to another
//! exactly as framed: so many bytes, chunk by chunk (each size line checked, trailers bounded),
//! or up to the close. Nothing past the body is taken: the next request (pipelined) or response
//! stays in the buffer.

use std::{io, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::head::BodyLen;

/// How much is read at once.
const READ_SIZE: usize = 16 * 1024;
/// A chunk-size line (with extensions) and a trailer section may not be longer.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a relay stopped.
#[derive(Debug)]
pub enum RelayError {
    /// The sending side closed or failed mid-body.
    From(io::Error),
    /// The receiving side failed.
    To(io::Error),
    /// Chunked framing that does not parse.
    Malformed(&'static str),
    /// Nothing came for the idle timeout.
    Idle,
}

/// Writes all of `bytes` within `limit` (a peer that stops reading is let go).
pub async fn send(to: &mut TcpStream, bytes: &[u8], limit: Duration) -> Result<(), RelayError> {
    match tokio::time::timeout(limit, to.write_all(bytes)).await {
        Ok(r) => r.map_err(RelayError::To),
        Err(_) => Err(RelayError::Idle),
    }
}

/// A chunk-size line, strictly: hex digits (at most 15), then optional extensions of visible
/// characters, space and tab, then CRLF; a bare CR or LF anywhere is refused, since a server that
/// ends lines at LF would read other chunk boundaries than rvsd (httparse's parser is lenient
/// there). Returns the size.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\r\n")?;
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let rest = &body[digits..];
    let ext_ok = rest.is_empty()
        || (matches!(rest[0], b';' | b' ' | b'\t')
            && rest
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)));
    if !ext_ok {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&body[..digits]).ok()?, 16).ok()
}

/// A TCP connection and what was read from it but not yet used.
pub struct Buffered {
    pub io: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Buffered {
    pub fn new(io: TcpStream) -> Buffered {
        Buffered {
            io,
            buf: Vec::with_capacity(READ_SIZE),
            start: 0,
        }
    }

    /// What was read and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more (0: the peer closed), into the buffer's spare room (not zeroed first).
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 > self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_SIZE);
        self.io.read_buf(&mut self.buf).await
    }

    /// Sends `head` and, in the same write, as much of a body of `len` as is already buffered;
    /// returns the body bytes it took. One write instead of two for a small message.
    pub async fn send_with_head(
        &mut self,
        to: &mut TcpStream,
        mut head: Vec<u8>,
        len: BodyLen,
        limit: Duration,
    ) -> Result<u64, RelayError> {
        let take = match len {
            BodyLen::Length(n) => self.data().len().min(n.min(usize::MAX as u64) as usize),
            BodyLen::UntilClose => self.data().len(),
            // Chunked framing is checked line by line on the way.
            BodyLen::None | BodyLen::Chunked => 0,
        };
        head.extend_from_slice(&self.data()[..take]);
        self.consume(take);
        send(to, &head, limit).await?;
        Ok(take as u64)
    }

    /// Reads more within `limit`; EOF is an error here.
    async fn fill_within(&mut self, limit: Duration) -> Result<(), RelayError> {
        match tokio::time::timeout(limit, self.fill()).await {
            Err(_) => Err(RelayError::Idle),
            Ok(Ok(0)) => Err(RelayError::From(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RelayError::From(e)),
        }
    }

    /// Moves `n` bytes to `to`, from the buffer first.
    async fn copy_exact(
        &mut self,
        to: &mut TcpStream,
        mut n: u64,
        idle: Duration,
    ) -> Result<(), RelayError> {
        while n > 0 {
            if self.data().is_empty() {
                self.fill_within(idle).await?;
            }
            let take = self.data().len().min(n.min(usize::MAX as u64) as usize);
            send(to, &self.data()[..take], idle).await?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Takes everything up to and including the first CRLF (within `max` bytes). It is checked
    /// before it is sent on, so a malformed line never reaches the other side.
    async fn next_line(&mut self, max: usize, idle: Duration) -> Result<Vec<u8>, RelayError> {
        loop {
            if let Some(i) = self.data().windows(2).position(|w| w == b"\r\n") {
                let line = self.data()[..i + 2].to_vec();
                self.consume(i + 2);
                return Ok(line);
            }
            if self.data().len() > max {
                return Err(RelayError::Malformed("chunk line too long"));
            }
            self.fill_within(idle).await?;
        }
    }

    /// Relays a body framed as `len` to `to`, of which `sent` bytes already went with the head
    /// ([`Buffered::send_with_head`]); returns the bytes of body data moved in all.
    pub async fn relay_body(
        &mut self,
        to: &mut TcpStream,
        len: BodyLen,
        sent: u64,
        idle: Duration,
    ) -> Result<u64, RelayError> {
        match len {
            BodyLen::None => Ok(0),
            BodyLen::Length(n) => self.copy_exact(to, n - sent, idle).await.map(|_| n),
            BodyLen::Chunked => self.relay_chunked(to, idle, false).await,
            BodyLen::UntilClose => {
                let mut total = sent;
                loop {
                    if !self.data().is_empty() {
                        let n = self.data().len();
                        send(to, self.data(), idle).await?;
                        self.consume(n);
                        total += n as u64;
                    }
                    match tokio::time::timeout(idle, self.fill()).await {
                        Err(_) => return Err(RelayError::Idle),
                        Ok(Ok(0)) => return Ok(total),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(RelayError::From(e)),
                    }
                }
            }
        }
    }

    /// A chunked body as bare data, for an HTTP/1.0 client (which cannot read chunks: the
    /// connection's close ends the body).
    pub async fn relay_dechunked(
        &mut self,
        to: &mut TcpStream,
        idle: Duration,
    ) -> Result<u64, RelayError> {
        self.relay_chunked(to, idle, true).await
    }

    /// Chunks go on with their size lines rebuilt (extensions dropped) and the trailer section
    /// dropped (rvsd sends the final CRLF only): what the other side reads is exactly what rvsd
    /// parsed.
    async fn relay_chunked(
        &mut self,
        to: &mut TcpStream,
        idle: Duration,
        dechunk: bool,
    ) -> Result<u64, RelayError> {
        let mut total = 0u64;
        loop {
            let line = self.next_line(MAX_CHUNK_LINE, idle).await?;
            let Some(size) = chunk_size(&line) else {
                return Err(RelayError::Malformed("bad chunk size line"));
            };
            if !dechunk {
                send(to, format!("{size:x}\r\n").as_bytes(), idle).await?;
            }
            if size == 0 {
                break;
            }
            self.copy_exact(to, size, idle).await?;
            total += size;
            if self.next_line(2, idle).await? != b"\r\n" {
                return Err(RelayError::Malformed("chunk not followed by CRLF"));
            }
            if !dechunk {
                send(to, b"\r\n", idle).await?;
            }
        }
        // Trailer fields, up to the empty line: read and dropped.
        let mut trailers = 0;
        loop {
            let line = self.next_line(MAX_TRAILERS, idle).await?;
            if line == b"\r\n" {
                if !dechunk {
                    send(to, b"\r\n", idle).await?;
                }
                return Ok(total);
            }
            trailers += line.len();
            if trailers > MAX_TRAILERS
                || line[..line.len() - 2]
                    .iter()
                    .any(|&b| b == b'\n' || b == b'\r')
            {
                return Err(RelayError::Malformed("trailers too long or malformed"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_size;

    #[test]
    fn chunk_size_lines_are_strict() {
        assert_eq!(chunk_size(b"1f\r\n"), Some(31));
        assert_eq!(chunk_size(b"5;name=value\r\n"), Some(5));
        assert_eq!(chunk_size(b"0\r\n"), Some(0));
        for bad in [
            b"\r\n".as_slice(),
            b";x\r\n",
            b"5;a\nX\r\n",
            b"5\rX\r\n",
            b"g\r\n",
            b"5x\r\n",
            b"1234567890abcdef0\r\n",
            b"-1\r\n",
        ] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
