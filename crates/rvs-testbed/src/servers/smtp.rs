//! A small SMTP server: greets with `220 <name>` (or the code a test sets, to fail SMTP_CHECK),
//! answers HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP and QUIT, and keeps every message it was
//! given, so a test can read the mail rvsd sent.

use std::{
    io::{self, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
};

use anyhow::Result;

use super::{accept::Acceptor, lines::LineReader};
use crate::Netns;

/// A message as the server received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceivedMail {
    pub helo: String,
    /// The address in `MAIL FROM:<...>`.
    pub from: String,
    /// The addresses in `RCPT TO:<...>`.
    pub to: Vec<String>,
    /// Headers and body, lines joined with `\n`, dot-stuffing undone.
    pub data: String,
}

impl ReceivedMail {
    /// The value of header `name` (first line only).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then_some(v.trim())
            })
    }
}

/// A running SMTP server; dropping it stops it.
#[derive(Debug)]
pub struct SmtpServer {
    banner: Arc<AtomicU16>,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    acceptor: Acceptor,
}

impl SmtpServer {
    /// Listens on `addr` inside `ns`, greeting as `name`.
    pub fn start(ns: &Netns, name: &str, addr: SocketAddr) -> Result<Self> {
        let banner = Arc::new(AtomicU16::new(220));
        let mails = Arc::new(Mutex::new(Vec::new()));
        let (b, m, host) = (Arc::clone(&banner), Arc::clone(&mails), name.to_owned());
        let acceptor = Acceptor::start(ns, name, addr, move |stream, stop| {
            let _ = session(stream, stop, &host, b.load(Ordering::Relaxed), &m);
        })?;
        Ok(Self {
            banner,
            mails,
            acceptor,
        })
    }

    /// Greets with `code` from now on (220 serves; 421 or 554 turn clients away).
    pub fn set_banner(&self, code: u16) {
        self.banner.store(code, Ordering::Relaxed);
    }

    /// The messages received so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.mails.lock().expect("mails").clone()
    }

    /// How many connections came from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> u64 {
        self.acceptor.connections_from(ip)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.acceptor.local_addr()
    }
}

fn session(
    stream: TcpStream,
    stop: &AtomicBool,
    name: &str,
    banner: u16,
    mails: &Mutex<Vec<ReceivedMail>>,
) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = LineReader::new(stream);
    if banner != 220 {
        return write!(out, "{banner} {name} not available\r\n");
    }
    write!(out, "220 {name} ESMTP rvs-testbed\r\n")?;
    let mut mail = ReceivedMail::default();
    while let Some(line) = lines.next_line(stop)? {
        let upper = line.to_ascii_uppercase();
        let reply = match upper.split_whitespace().next().unwrap_or("") {
            "HELO" | "EHLO" => {
                mail.helo = line[4..].trim().to_owned();
                "250 hello"
            }
            "MAIL" => {
                mail.from = address(&line);
                "250 sender ok"
            }
            "RCPT" => {
                mail.to.push(address(&line));
                "250 recipient ok"
            }
            "DATA" => {
                write!(out, "354 go ahead\r\n")?;
                let mut data = Vec::new();
                loop {
                    match lines.next_line(stop)? {
                        None => return Ok(()),
                        Some(l) if l == "." => break,
                        Some(l) => data.push(l.strip_prefix('.').unwrap_or(&l).to_owned()),
                    }
                }
                let helo = mail.helo.clone();
                let done = std::mem::take(&mut mail);
                mail.helo = helo;
                mails.lock().expect("mails").push(ReceivedMail {
                    data: data.join("\n"),
                    ..done
                });
                "250 queued"
            }
            "RSET" | "NOOP" => "250 ok",
            "QUIT" => {
                write!(out, "221 bye\r\n")?;
                return Ok(());
            }
            _ => "502 not implemented",
        };
        write!(out, "{reply}\r\n")?;
    }
    Ok(())
}

/// `MAIL FROM:<a@b>` → `a@b`.
fn address(line: &str) -> String {
    match (line.find('<'), line.rfind('>')) {
        (Some(s), Some(e)) if s < e => line[s + 1..e].to_owned(),
        _ => line
            .split_once(':')
            .map_or("", |(_, a)| a)
            .trim()
            .to_owned(),
    }
}
