//! The client side, used by rvsadm (blocking: one request at a time).

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use super::proto::{Request, Response};

/// Something that answers control requests: rvsd over its socket, or (in unit tests of the
/// command line) an in-process director.
pub trait Backend {
    fn call(&mut self, req: &Request) -> io::Result<Response>;
}

/// A connection to rvsd.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }
}

impl Backend for Client {
    fn call(&mut self, req: &Request) -> io::Result<Response> {
        let mut line = serde_json::to_string(req).map_err(io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "rvsd closed the connection",
            ));
        }
        serde_json::from_str(&answer).map_err(io::Error::other)
    }
}
