//! The monitor's certificate and TLS: the operator's certificate and key, or a self-signed pair
//! made once in rvsd's state directory (kept across restarts, so a browser's exception and a
//! pinned fingerprint stay valid). Connections whose first byte is not a TLS handshake get a
//! short plain-text refusal and are closed: nothing is served over plain HTTP.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio::{io::AsyncWriteExt, net::TcpStream};

/// The self-signed certificate's file in the state directory.
pub const SELF_SIGNED_CERT: &str = "web-cert.pem";
/// Its key.
pub const SELF_SIGNED_KEY: &str = "web-key.pem";

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The certificate in use.
pub struct Identity {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the certificate's DER, as `AA:BB:...` (what browsers show).
    pub fingerprint: String,
    pub cert_file: PathBuf,
}

/// Loads `cert`/`key`, or (both None) the self-signed pair in `state_dir`, made if missing.
pub fn identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
    listen: SocketAddr,
) -> Result<Identity> {
    let (cert_file, key_file) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
        (None, None) => {
            let c = state_dir.join(SELF_SIGNED_CERT);
            let k = state_dir.join(SELF_SIGNED_KEY);
            if !c.exists() || !k.exists() {
                make_self_signed(&c, &k, listen.ip())?;
                tracing::info!("web: made a self-signed certificate {}", c.display());
            }
            (c, k)
        }
        _ => bail!("--web-cert and --web-key go together"),
    };
    let pem = std::fs::read(&cert_file)
        .with_context(|| format!("reading the certificate {}", cert_file.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate", cert_file.display()))?;
    let Some(first) = certs.first() else {
        bail!("{}: no certificate in it", cert_file.display());
    };
    let fingerprint = fingerprint(first);
    let key_pem = std::fs::read(&key_file)
        .with_context(|| format!("reading the key {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("{}: not a PEM private key", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the web certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
        cert_file,
    })
}

/// A self-signed certificate for `localhost`, the loopback addresses and `ip` (when not the
/// unspecified address), its key readable by root only.
fn make_self_signed(cert: &Path, key: &Path, ip: IpAddr) -> Result<()> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rvsd monitor");
    let pair = rcgen::KeyPair::generate()?;
    let c = params.self_signed(&pair)?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, c.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // Exactly `mode` whatever the umask (rvsd's is 077): the certificate is meant to be read by
    // anyone, the key by root alone.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// SHA-256 of a certificate, colon-separated upper-case hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether the client speaks TLS; a plain-HTTP client is told so and the connection closed.
pub async fn is_tls(stream: &mut TcpStream) -> bool {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE => true,
        Ok(1) => {
            let body = "This is rvsd's monitor: it speaks HTTPS only. Use https://.\n";
            let reply = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("rvs-web-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let addr: SocketAddr = "198.18.0.1:8443".parse().unwrap();
        let a = identity(None, None, &dir, addr).unwrap();
        let b = identity(None, None, &dir, addr).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let mode = std::fs::metadata(dir.join(SELF_SIGNED_KEY)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let mode = std::fs::metadata(dir.join(SELF_SIGNED_CERT)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o644
        );
        assert!(identity(Some(&dir.join("x")), None, &dir, addr).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
