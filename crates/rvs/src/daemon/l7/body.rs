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
    ) -> Result<u64, RelayError> {
        let take = match len {
            BodyLen::Length(n) => self.data().len().min(n.min(usize::MAX as u64) as usize),
            BodyLen::UntilClose => self.data().len(),
            // Chunked framing is checked line by line on the way.
            BodyLen::None | BodyLen::Chunked => 0,
        };
        head.extend_from_slice(&self.data()[..take]);
        self.consume(take);
        to.write_all(&head).await.map_err(RelayError::To)?;
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
            to.write_all(&self.data()[..take])
                .await
                .map_err(RelayError::To)?;
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
            BodyLen::Chunked => self.relay_chunked(to, idle).await,
            BodyLen::UntilClose => {
                let mut total = sent;
                loop {
                    if !self.data().is_empty() {
                        let n = self.data().len();
                        to.write_all(self.data()).await.map_err(RelayError::To)?;
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

    async fn relay_chunked(
        &mut self,
        to: &mut TcpStream,
        idle: Duration,
    ) -> Result<u64, RelayError> {
        let mut total = 0u64;
        loop {
            let line = self.next_line(MAX_CHUNK_LINE, idle).await?;
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(RelayError::Malformed("bad chunk size")),
            };
            to.write_all(&line).await.map_err(RelayError::To)?;
            if size == 0 {
                break;
            }
            self.copy_exact(to, size, idle).await?;
            total += size;
            if self.next_line(2, idle).await? != b"\r\n" {
                return Err(RelayError::Malformed("chunk not followed by CRLF"));
            }
            to.write_all(b"\r\n").await.map_err(RelayError::To)?;
        }
        // Trailer fields, then the empty line.
        let mut trailers = 0;
        loop {
            let line = self.next_line(MAX_TRAILERS, idle).await?;
            to.write_all(&line).await.map_err(RelayError::To)?;
            if line == b"\r\n" {
                return Ok(total);
            }
            trailers += line.len();
            if trailers > MAX_TRAILERS {
                return Err(RelayError::Malformed("trailers too long"));
            }
        }
    }
}
