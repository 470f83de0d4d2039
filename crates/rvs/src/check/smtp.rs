//! SMTP_CHECK: the server greets with 220, answers `HELO name` with 250, and is sent QUIT
//! (whose answer keepalived does not judge).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{CheckSpec, SmtpCheck, net};

/// Longest reply line read (RFC 5321 allows 512 bytes).
const MAX_LINE: u64 = 4096;

pub async fn check(spec: &CheckSpec, s: &SmtpCheck) -> Result<String, String> {
    let stream = net::connect_tcp(spec).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, 220, "greeting banner").await?;
    let helo = format!("HELO {}\r\n", s.helo_name);
    write
        .write_all(helo.as_bytes())
        .await
        .map_err(|e| format!("sending HELO: {}", net::describe(&e)))?;
    expect(&mut read, 250, "HELO response").await?;
    // The check has passed; a server that drops the connection at QUIT does not change that.
    if write.write_all(b"QUIT\r\n").await.is_ok() {
        let _ = reply(&mut read).await;
    }
    Ok("banner 220, HELO 250".to_owned())
}

async fn expect<R: AsyncBufRead + Unpin>(
    read: &mut R,
    code: u16,
    what: &str,
) -> Result<(), String> {
    match reply(read).await? {
        c if c == code => Ok(()),
        c => Err(format!("bad {what}: {c} instead of {code}")),
    }
}

/// Reads one reply (its continuation lines `NNN-...` included) and returns its code.
pub(super) async fn reply<R: AsyncBufRead + Unpin>(read: &mut R) -> Result<u16, String> {
    loop {
        let mut line = String::new();
        let n = read
            .take(MAX_LINE)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading reply: {}", net::describe(&e)))?;
        if n == 0 {
            return Err("connection closed before a reply".to_owned());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("malformed reply '{}'", line.trim_end()))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{
        CheckKind, run_once,
        testing::{SmtpServer, closed_port, spec},
    };

    fn smtp() -> CheckKind {
        CheckKind::Smtp(SmtpCheck {
            helo_name: "checker.example.org".into(),
        })
    }

    #[tokio::test]
    async fn banner_helo_quit() {
        let server = SmtpServer::start("220-mail.example.org ESMTP\r\n220 ready\r\n").await;
        let out = run_once(&spec(smtp(), server.addr)).await;
        assert!(out.ok, "{out:?}");
        // Give the responder the moment it needs to log the QUIT.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            *server.transcript.lock().unwrap(),
            "HELO checker.example.org\r\nQUIT\r\n"
        );
    }

    #[tokio::test]
    async fn bad_banner_and_no_server() {
        let server = SmtpServer::start("554 go away\r\n").await;
        let out = run_once(&spec(smtp(), server.addr)).await;
        assert_eq!(out.detail, "bad greeting banner: 554 instead of 220");
        assert!(!run_once(&spec(smtp(), closed_port())).await.ok);
    }
}
