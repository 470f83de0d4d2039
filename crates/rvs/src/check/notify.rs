//! Carrying out notifications: notify scripts run with `/bin/sh -c` without waiting for them,
//! and mail sent over SMTP directly (HELO, MAIL FROM, RCPT TO, DATA, QUIT) as keepalived does,
//! without a local mail program.

use std::{
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::TcpStream,
};

use super::{Mail, smtp};

/// Starts `command` with `/bin/sh -c` and lets it run; it is reaped in the background.
pub fn run_script(command: &str) -> std::io::Result<()> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Where and how notification mail goes (global_defs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    /// smtp_server: an address or host name, and port.
    pub server: String,
    pub port: u16,
    /// notification_email_from.
    pub from: String,
    /// notification_email.
    pub to: Vec<String>,
    pub helo_name: String,
    /// smtp_connect_timeout: the limit of the connection and of each reply.
    pub timeout: Duration,
}

/// Sends one mail.
pub async fn send_mail(settings: &MailSettings, mail: &Mail) -> Result<(), String> {
    let stream = step(
        settings,
        "connect",
        TcpStream::connect((settings.server.as_str(), settings.port)),
    )
    .await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut expect = async |what: &str, codes: &[u16]| -> Result<(), String> {
        let code = step(settings, what, smtp::reply(&mut read)).await?;
        if codes.contains(&code) {
            Ok(())
        } else {
            Err(format!("{what}: server answered {code}"))
        }
    };
    let mut send = async |line: String| -> Result<(), String> {
        step(settings, "send", async {
            write
                .write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())
        })
        .await
    };
    expect("greeting", &[220]).await?;
    send(format!("HELO {}\r\n", settings.helo_name)).await?;
    expect("HELO", &[250]).await?;
    send(format!("MAIL FROM:<{}>\r\n", bare_address(&settings.from))).await?;
    expect("MAIL FROM", &[250]).await?;
    for to in &settings.to {
        send(format!("RCPT TO:<{}>\r\n", bare_address(to))).await?;
        expect("RCPT TO", &[250, 251]).await?;
    }
    send("DATA\r\n".to_owned()).await?;
    expect("DATA", &[354]).await?;
    send(message(settings, mail, SystemTime::now())).await?;
    expect("message", &[250]).await?;
    send("QUIT\r\n".to_owned()).await?;
    // The mail is accepted; the goodbye does not matter.
    let _ = expect("QUIT", &[221]).await;
    Ok(())
}

async fn step<T, E: ToString>(
    settings: &MailSettings,
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(settings.timeout, f).await {
        Ok(r) => r.map_err(|e| {
            format!(
                "smtp {}:{} {what}: {}",
                settings.server,
                settings.port,
                e.to_string()
            )
        }),
        Err(_) => Err(format!(
            "smtp {}:{} {what}: timed out after {:?}",
            settings.server, settings.port, settings.timeout
        )),
    }
}

/// `"Name <a@b>"` → `a@b`.
fn bare_address(a: &str) -> &str {
    match (a.find('<'), a.rfind('>')) {
        (Some(s), Some(e)) if s < e => &a[s + 1..e],
        _ => a.trim(),
    }
}

/// The headers keepalived writes, the body, and the end of DATA; lines starting with a dot
/// are doubled (RFC 5321 4.5.2).
pub fn message(settings: &MailSettings, mail: &Mail, now: SystemTime) -> String {
    let mut m = format!(
        "Date: {}\r\nFrom: {}\r\nSubject: {}\r\nX-Mailer: rvs\r\nTo: {}\r\n\r\n",
        rfc5322_date(now),
        settings.from,
        mail.subject,
        settings.to.join(",\r\n ")
    );
    for line in mail.body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m
}

/// `Mon, 01 Mar 2021 09:44:08 +0000` (UTC).
fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let (h, mi, s) = (secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {h:02}:{mi:02}:{s:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

/// The host name, keepalived's default for router_id, the HELO name and the sender's domain.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_614_591_848);
        assert_eq!(rfc5322_date(t), "Mon, 01 Mar 2021 09:44:08 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            bare_address("My admin <admin@example2.com>"),
            "admin@example2.com"
        );
        assert_eq!(bare_address("cnseek@gmail.com"), "cnseek@gmail.com");
    }
}

#[cfg(test)]
mod mail_tests {
    use super::*;
    use crate::check::testing::SmtpServer;

    #[tokio::test]
    async fn sends_through_an_smtp_server() {
        let server = SmtpServer::start("220 mail ready\r\n").await;
        let settings = MailSettings {
            server: "127.0.0.1".into(),
            port: server.addr.port(),
            from: "LVS <lvs@example.org>".into(),
            to: vec!["ops@example.org".into(), "Night <night@example.org>".into()],
            helo_name: "lb1.example.org".into(),
            timeout: Duration::from_secs(2),
        };
        let mail = Mail {
            subject: "[lb1] Realserver [10.0.0.1]:80 of virtual server [192.0.2.1]:tcp:80 - DOWN"
                .into(),
            body: "=> TCP_CHECK failed <=\n.hidden".into(),
        };
        send_mail(&settings, &mail).await.unwrap();
        let t = server.transcript.lock().unwrap().clone();
        let head = "HELO lb1.example.org\r\nMAIL FROM:<lvs@example.org>\r\nRCPT TO:<ops@example.org>\r\nRCPT TO:<night@example.org>\r\nDATA\r\nDate: ";
        assert!(t.starts_with(head), "{t}");
        assert!(t.contains("\r\nFrom: LVS <lvs@example.org>\r\nSubject: [lb1] Realserver [10.0.0.1]:80 of virtual server [192.0.2.1]:tcp:80 - DOWN\r\n"), "{t}");
        assert!(t.contains("To: ops@example.org,\r\n Night <night@example.org>\r\n\r\n=> TCP_CHECK failed <=\r\n..hidden\r\n.\r\nQUIT\r\n"), "{t}");
    }

    #[tokio::test]
    async fn reports_an_unreachable_server() {
        let addr = crate::check::testing::closed_port();
        let settings = MailSettings {
            server: "127.0.0.1".into(),
            port: addr.port(),
            from: "a@b".into(),
            to: vec!["c@d".into()],
            helo_name: "x".into(),
            timeout: Duration::from_secs(1),
        };
        let err = send_mail(
            &settings,
            &Mail {
                subject: "s".into(),
                body: "b".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(
            err.starts_with(&format!("smtp 127.0.0.1:{} connect: ", addr.port())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn scripts_run_detached() {
        let path = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        run_script(&format!("echo \"$0 up\" > {}", path.display())).unwrap();
        for _ in 0..100 {
            if std::fs::read_to_string(&path).is_ok_and(|s| s == "/bin/sh up\n") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "/bin/sh up\n");
        std::fs::remove_file(&path).unwrap();
    }
}
