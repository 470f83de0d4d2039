//! TCP_CHECK: the check passes when the connection completes; it is closed at once.

use super::{CheckSpec, net};

pub async fn check(spec: &CheckSpec) -> Result<String, String> {
    let stream = net::connect_tcp(spec).await?;
    drop(stream);
    Ok(format!("connected to {}", spec.target))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use crate::check::{CheckKind, run_once, testing::spec};

    #[tokio::test]
    async fn connects_and_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ok = run_once(&spec(CheckKind::Tcp, addr)).await;
        assert!(ok.ok, "{ok:?}");
        drop(listener);
        let refused = run_once(&spec(CheckKind::Tcp, addr)).await;
        assert!(!refused.ok);
        assert!(refused.detail.contains("connection refused"), "{refused:?}");
    }

    #[tokio::test]
    async fn bindto_sets_the_source() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut s = spec(CheckKind::Tcp, listener.local_addr().unwrap());
        s.bind = Some("127.0.0.2:0".parse().unwrap());
        let (out, accepted) = tokio::join!(run_once(&s), listener.accept());
        assert!(out.ok, "{out:?}");
        assert_eq!(accepted.unwrap().1.ip().to_string(), "127.0.0.2");
    }
}
