//! HTTP_GET and SSL_GET: for every url, a `GET` (HTTP/1.0 unless http_protocol says otherwise)
//! with keepalived's headers; the response must carry an accepted status code (200-299 unless
//! status_code says otherwise) and, when a digest is configured, a body whose MD5 matches. SSL_GET
//! speaks TLS first, sends SNI when asked, and does not verify the certificate (as keepalived).

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
};

use md5::{Digest, Md5};
use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::{CheckSpec, HttpCheck, HttpProtocol, UrlCheck, net};

/// A response larger than this fails the check rather than filling memory.
const MAX_RESPONSE: usize = 16 << 20;

pub async fn check(spec: &CheckSpec, h: &HttpCheck) -> Result<String, String> {
    for url in &h.urls {
        get(spec, h, url)
            .await
            .map_err(|e| format!("GET {}: {e}", url.path))?;
    }
    Ok(match h.urls.len() {
        1 => format!("GET {} passed", h.urls[0].path),
        n => format!("{n} urls passed"),
    })
}

async fn get(spec: &CheckSpec, h: &HttpCheck, url: &UrlCheck) -> Result<(), String> {
    let vhost = url.virtualhost.as_deref().or(h.virtualhost.as_deref());
    let request = request(spec, h.protocol, url, vhost);
    let tcp = net::connect_tcp(spec).await?;
    let response = match &h.tls {
        None => exchange(tcp, &request).await?,
        Some(tls) => {
            let sni = tls
                .sni_name
                .as_deref()
                .or(if tls.enable_sni { vhost } else { None });
            let (connector, name) = tls_target(sni, spec.target.ip())?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            exchange(stream, &request).await?
        }
    };
    judge(url, &response)
}

/// keepalived's request: the path, User-Agent, `Connection: close` for 1.0C and 1.1, and Host
/// from the virtualhost, else the target address with its port.
fn request(
    spec: &CheckSpec,
    protocol: HttpProtocol,
    url: &UrlCheck,
    vhost: Option<&str>,
) -> String {
    let minor = if protocol == HttpProtocol::Http11 {
        1
    } else {
        0
    };
    let close = if protocol == HttpProtocol::Http10 {
        ""
    } else {
        "Connection: close\r\n"
    };
    let host = match vhost {
        Some(v) => v.to_owned(),
        None => match spec.target.ip() {
            IpAddr::V4(a) => format!("{a}:{}", spec.target.port()),
            IpAddr::V6(a) => format!("[{a}]:{}", spec.target.port()),
        },
    };
    format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n",
        url.path
    )
}

/// Sends the request and reads the response to the end of the connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending request: {}", net::describe(&e)))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() > MAX_RESPONSE {
                    return Err(format!("response larger than {MAX_RESPONSE} bytes"));
                }
            }
            // A TLS server that closes without close_notify has still sent its response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
                break;
            }
            Err(e) => return Err(format!("reading response: {}", net::describe(&e))),
        }
    }
    if response.is_empty() {
        return Err("no data received".to_owned());
    }
    Ok(response)
}

fn judge(url: &UrlCheck, response: &[u8]) -> Result<(), String> {
    let status = status_code(response).ok_or("response without an HTTP status line")?;
    if !url.accepts(status) {
        return Err(format!("HTTP status {status}"));
    }
    if let Some(want) = &url.digest {
        let got = body_digest(response);
        if &got != want {
            return Err(format!("MD5 digest {got} differs from {want}"));
        }
    }
    Ok(())
}

/// The code of `HTTP/1.x NNN reason`.
fn status_code(response: &[u8]) -> Option<u16> {
    let line_end = response
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(response.len());
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// MD5 of the body (what follows the blank line after the headers), in lowercase hex: what
/// keepalived's genhash prints.
pub fn body_digest(response: &[u8]) -> String {
    let body = find(response, b"\r\n\r\n")
        .map(|i| &response[i + 4..])
        .or_else(|| find(response, b"\n\n").map(|i| &response[i + 2..]))
        .unwrap_or(&[]);
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn tls_target(
    sni: Option<&str>,
    ip: IpAddr,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    type Shared = OnceLock<Result<Arc<ClientConfig>, String>>;
    static WITH_SNI: Shared = OnceLock::new();
    static WITHOUT_SNI: Shared = OnceLock::new();
    let (cell, server) = match sni {
        Some(name) => (
            &WITH_SNI,
            ServerName::try_from(name.to_owned())
                .map_err(|e| format!("server name '{name}': {e}"))?,
        ),
        None => (&WITHOUT_SNI, ServerName::IpAddress(ip.into())),
    };
    let config = cell.get_or_init(|| client_config(sni.is_some())).clone()?;
    Ok((TlsConnector::from(config), server))
}

fn client_config(sni: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    config.enable_sni = sni;
    Ok(Arc::new(config))
}

/// keepalived's SSL_GET checks that a server answers, not who it is: any certificate is taken.
/// Handshake signatures are still verified, so the session itself is sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{
        CheckKind, TlsOptions, run_once,
        testing::{HttpServer, spec},
    };

    fn url(path: &str) -> UrlCheck {
        UrlCheck {
            path: path.to_owned(),
            status: Vec::new(),
            digest: None,
            virtualhost: None,
        }
    }

    fn http(urls: Vec<UrlCheck>, tls: Option<TlsOptions>) -> CheckKind {
        CheckKind::Http(HttpCheck {
            urls,
            virtualhost: None,
            protocol: HttpProtocol::Http10,
            tls,
        })
    }

    #[tokio::test]
    async fn status_codes_and_host_header() {
        let server = HttpServer::start(false).await;
        let s = spec(http(vec![url("/health")], None), server.addr);
        assert!(run_once(&s).await.ok);
        let head = server.requests().pop().unwrap().head;
        assert_eq!(
            head,
            format!(
                "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {}\r\n\r\n",
                server.addr
            )
        );
        server.set(503, "down");
        let out = run_once(&s).await;
        assert!(!out.ok);
        assert_eq!(out.detail, "GET /health: HTTP status 503");
        // status_code lists and ranges replace the default 200-299.
        let mut u = url("/health");
        u.status = vec![(500, 503), (301, 301)];
        assert!(
            run_once(&spec(http(vec![u.clone()], None), server.addr))
                .await
                .ok
        );
        server.set(200, "fine");
        assert!(!run_once(&spec(http(vec![u], None), server.addr)).await.ok);
    }

    #[tokio::test]
    async fn digest_virtualhost_and_every_url() {
        let server = HttpServer::start(false).await;
        server.set(200, "hello\n");
        // md5("hello\n"), as `genhash` prints it.
        let mut good = url("/a");
        good.digest = Some("b1946ac92492d2347c6235b4d2611184".into());
        good.virtualhost = Some("www.example.org".into());
        let mut bad = url("/b");
        bad.digest = Some("00000000000000000000000000000000".into());
        let mut kind = http(vec![good.clone()], None);
        if let CheckKind::Http(h) = &mut kind {
            h.protocol = HttpProtocol::Http11;
        }
        assert!(run_once(&spec(kind, server.addr)).await.ok);
        let head = server.requests().pop().unwrap().head;
        assert!(head.starts_with("GET /a HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains("Connection: close\r\nHost: www.example.org\r\n"),
            "{head}"
        );
        let out = run_once(&spec(http(vec![good, bad], None), server.addr)).await;
        assert!(!out.ok);
        assert!(
            out.detail
                .starts_with("GET /b: MD5 digest b1946ac92492d2347c6235b4d2611184 differs"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn ssl_get_with_and_without_sni() {
        let server = HttpServer::start(true).await;
        let tls = TlsOptions {
            enable_sni: true,
            sni_name: None,
        };
        let mut kind = http(vec![url("/")], Some(tls));
        if let CheckKind::Http(h) = &mut kind {
            h.virtualhost = Some("www.example.org".into());
        }
        let out = run_once(&spec(kind, server.addr)).await;
        assert!(out.ok, "self-signed certificate accepted: {out:?}");
        assert_eq!(
            server.requests().pop().unwrap().sni.as_deref(),
            Some("www.example.org")
        );
        let named = TlsOptions {
            enable_sni: false,
            sni_name: Some("sni.example.org".into()),
        };
        assert!(
            run_once(&spec(http(vec![url("/")], Some(named)), server.addr))
                .await
                .ok
        );
        assert_eq!(
            server.requests().pop().unwrap().sni.as_deref(),
            Some("sni.example.org")
        );
        assert!(
            run_once(&spec(
                http(vec![url("/")], Some(TlsOptions::default())),
                server.addr
            ))
            .await
            .ok
        );
        assert_eq!(
            server.requests().pop().unwrap().sni,
            None,
            "no SNI unless asked"
        );
        server.set(500, "");
        assert!(
            !run_once(&spec(
                http(vec![url("/")], Some(TlsOptions::default())),
                server.addr
            ))
            .await
            .ok
        );
    }

    #[tokio::test]
    async fn plain_http_against_tls_and_stalls_fail() {
        let server = HttpServer::start(false).await;
        server.stall(true);
        let mut s = spec(http(vec![url("/")], None), server.addr);
        s.connect_timeout = std::time::Duration::from_millis(200);
        let out = run_once(&s).await;
        assert_eq!(out.detail, "timed out after 200ms");
        let tls_server = HttpServer::start(true).await;
        s.target = tls_server.addr;
        assert!(!run_once(&s).await.ok);
    }
}
