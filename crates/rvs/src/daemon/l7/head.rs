//! HTTP/1.x message heads: parsed by httparse, then judged the way a proxy in front of other
//! servers must (RFC 9112 §6.3 and the request-smuggling shapes), and rewritten for the next hop.
//!
//! Why not hyper: hyper's server drops `Content-Length` when `Transfer-Encoding` is present
//! (as RFC 9112 allows a recipient to), so a request carrying both, the classic smuggling shape a
//! proxy must refuse, could not be told apart; it also owns the connection, where rvsd must read
//! each head itself to route it and then relay bytes.

/// How long a message body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLen {
    None,
    Length(u64),
    Chunked,
    /// Responses only: until the server closes.
    UntilClose,
}

/// A request refused before it is routed: the status rvsd answers, and why (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> Reject {
    Reject {
        status: 400,
        reason,
    }
}

/// The most header fields a request may have (then 431).
pub const MAX_HEADERS: usize = 100;

/// A request head that may be forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// 0 or 1 (HTTP/1.0 or 1.1).
    pub minor: u8,
    /// Every field as received, in order.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Host without port, lowercase ("" for an HTTP/1.0 request without one).
    pub host: String,
    pub body: BodyLen,
    /// The client wants the connection kept after the response.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` field (WebSocket).
    pub upgrade: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

impl RequestHead {
    /// The path part of the target (an absolute-form target's path, "/" when it has none).
    pub fn path(&self) -> &str {
        let t = self.target.as_str();
        if t.starts_with('/') {
            return t;
        }
        match t.find("://") {
            Some(i) => t[i + 3..].find('/').map_or("/", |p| &t[i + 3 + p..]),
            None => t,
        }
    }

    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The value of cookie `name`, from every `Cookie` field.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }

    /// A retry on another connection cannot do harm (RFC 9110 §9.2.2) and there is no body to
    /// send again.
    pub fn replayable(&self) -> bool {
        self.body == BodyLen::None
            && matches!(
                self.method.as_str(),
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            )
    }

    /// The head for the real server: HTTP/1.1, hop-by-hop fields dropped (those the client's
    /// `Connection` names too), the client appended to `X-Forwarded-For` when asked.
    pub fn for_upstream(&self, forwarded_for: Option<std::net::IpAddr>) -> Vec<u8> {
        let named = connection_tokens(&self.fields);
        let mut out = Vec::with_capacity(self.len + 64);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut xff_done = false;
        for (name, value) in &self.fields {
            let lower = name.to_ascii_lowercase();
            if hop_by_hop(&lower) && !(self.upgrade && lower == "upgrade") {
                continue;
            }
            if named.contains(&lower) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            if lower == "x-forwarded-for"
                && let Some(ip) = forwarded_for.filter(|_| !xff_done)
            {
                out.extend_from_slice(format!(", {ip}").as_bytes());
                xff_done = true;
            }
            out.extend_from_slice(b"\r\n");
        }
        if let Some(ip) = forwarded_for.filter(|_| !xff_done) {
            out.extend_from_slice(format!("X-Forwarded-For: {ip}\r\n").as_bytes());
        }
        if self.upgrade {
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1).
fn hop_by_hop(lower: &str) -> bool {
    matches!(
        lower,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
    )
}

/// The lowercase options of every `Connection` field.
fn connection_tokens(fields: &[(String, Vec<u8>)]) -> Vec<String> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The body length a message's framing fields give, or the shape that makes it ambiguous.
fn framing(fields: &[(String, Vec<u8>)]) -> Result<Option<BodyLen>, &'static str> {
    let mut lengths = Vec::new();
    let mut codings = Vec::new();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(value).map_err(|_| "Content-Length is not a number")?;
            for part in v.split(',') {
                let p = part.trim();
                if p.is_empty() || p.len() > 18 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("Content-Length is not a number");
                }
                lengths.push(p.parse::<u64>().expect("18 digits fit"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(value).map_err(|_| "Transfer-Encoding is not text")?;
            codings.extend(v.split(',').map(|c| c.trim().to_ascii_lowercase()));
        }
    }
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err("Content-Length with Transfer-Encoding");
        }
        let chunked_last = codings.last().is_some_and(|c| c == "chunked");
        let chunked_before = codings[..codings.len() - 1].iter().any(|c| c == "chunked");
        if !chunked_last || chunked_before {
            return Err("Transfer-Encoding does not end in one chunked");
        }
        return Ok(Some(BodyLen::Chunked));
    }
    match lengths.split_first() {
        None => Ok(None),
        Some((first, rest)) if rest.iter().all(|l| l == first) => Ok(Some(if *first == 0 {
            BodyLen::None
        } else {
            BodyLen::Length(*first)
        })),
        Some(_) => Err("differing Content-Length values"),
    }
}

fn fields_of(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// Parses a request head at the start of `buf`. `Ok(None)`: not complete yet (and within
/// `max_head` bytes).
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<RequestHead>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(Reject {
                status: 431,
                reason: "request head too large",
            });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reject {
                status: 431,
                reason: "too many header fields",
            });
        }
        Err(httparse::Error::Version) => {
            return Err(Reject {
                status: 505,
                reason: "not HTTP/1.0 or 1.1",
            });
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    if len > max_head {
        return Err(Reject {
            status: 431,
            reason: "request head too large",
        });
    }
    let method = req.method.expect("complete").to_owned();
    let target = req.path.expect("complete").to_owned();
    let minor = req.version.expect("complete");
    let fields = fields_of(req.headers);
    if !(target.starts_with('/')
        || target.contains("://")
        || (method == "OPTIONS" && target == "*"))
    {
        // Authority-form (CONNECT) is a tunnel, not a request for these servers.
        return Err(bad("request target is not a path"));
    }
    let hosts: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let host = match (hosts.as_slice(), minor) {
        ([one], _) => host_name(one).ok_or(bad("malformed Host"))?,
        ([], 0) => String::new(),
        ([], _) => return Err(bad("HTTP/1.1 request without Host")),
        _ => return Err(bad("more than one Host")),
    };
    let body = match framing(&fields).map_err(bad)? {
        Some(BodyLen::Chunked) if minor == 0 => {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        Some(b) => b,
        None => BodyLen::None,
    };
    let tokens = connection_tokens(&fields);
    let keep_alive = if minor == 0 {
        tokens.iter().any(|t| t == "keep-alive")
    } else {
        !tokens.iter().any(|t| t == "close")
    };
    let upgrade = tokens.iter().any(|t| t == "upgrade")
        && fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("upgrade"));
    Ok(Some(RequestHead {
        method,
        target,
        minor,
        fields,
        host,
        body,
        keep_alive,
        upgrade,
        len,
    }))
}

/// A Host value as a name to match rules on: lowercase, without its port.
fn host_name(value: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(value).ok()?.trim();
    let name = if let Some(rest) = v.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || port_suffix(after)) {
            return None;
        }
        &v[..end + 2]
    } else {
        match v.rsplit_once(':') {
            Some((n, p)) if port_suffix(&format!(":{p}")) => n,
            Some(_) => return None,
            None => v,
        }
    };
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=[]:%".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

fn port_suffix(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A response head from a real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub minor: u8,
    pub reason: String,
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: BodyLen,
    /// The server keeps the connection open after this response.
    pub keep_alive: bool,
    pub len: usize,
}

impl ResponseHead {
    /// 1xx (but 101): another head follows.
    pub fn interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// The head for the client, with `extra` fields (Set-Cookie) and this connection's own
    /// `Connection` field.
    pub fn for_client(&self, keep_alive: bool, extra: &[String]) -> Vec<u8> {
        let named = connection_tokens(&self.fields);
        let mut out = Vec::with_capacity(self.len + 64);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).as_bytes());
        for (name, value) in &self.fields {
            let lower = name.to_ascii_lowercase();
            let framing_dup = lower == "content-length" && self.body == BodyLen::Chunked;
            if (hop_by_hop(&lower) && !(self.status == 101 && lower == "upgrade"))
                || named.contains(&lower)
                || framing_dup
            {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        for e in extra {
            out.extend_from_slice(e.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(match (self.status, keep_alive) {
            (101, _) => b"Connection: upgrade\r\n\r\n".as_slice(),
            (_, true) => b"\r\n",
            (_, false) => b"Connection: close\r\n\r\n",
        });
        out
    }
}

/// Parses a response head (to a request with `method`). `Ok(None)`: not complete yet.
pub fn parse_response(
    buf: &[u8],
    method: &str,
    max_head: usize,
) -> Result<Option<ResponseHead>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = res.code.expect("complete");
    let minor = res.version.expect("complete");
    let reason = res.reason.unwrap_or("").to_owned();
    let fields = fields_of(res.headers);
    let tokens = connection_tokens(&fields);
    let bodiless =
        method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if bodiless {
        BodyLen::None
    } else {
        // A response with both is framed by Transfer-Encoding (RFC 9112 §6.3), not refused.
        let te_only: Vec<(String, Vec<u8>)> = fields
            .iter()
            .filter(|(n, _)| {
                !(n.eq_ignore_ascii_case("content-length")
                    && fields
                        .iter()
                        .any(|(m, _)| m.eq_ignore_ascii_case("transfer-encoding")))
            })
            .cloned()
            .collect();
        match framing(&te_only) {
            Ok(Some(b)) => b,
            Ok(None) => BodyLen::UntilClose,
            // A coding that does not end in chunked: the body runs to the close.
            Err("Transfer-Encoding does not end in one chunked") => BodyLen::UntilClose,
            Err(e) => return Err(e),
        }
    };
    let keep_alive = body != BodyLen::UntilClose
        && if minor == 0 {
            tokens.iter().any(|t| t == "keep-alive")
        } else {
            !tokens.iter().any(|t| t == "close")
        };
    Ok(Some(ResponseHead {
        status,
        minor,
        reason,
        fields,
        body,
        keep_alive,
        len,
    }))
}

/// rvsd's own short answer (errors, 404, 503), closing the connection unless `keep_alive`.
pub fn own_response(status: u16, keep_alive: bool, extra: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let body = format!(
        "{status} {reason}{}{extra}\n",
        if extra.is_empty() { "" } else { ": " }
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{}\r\n{body}",
        body.len(),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Option<RequestHead>, Reject> {
        parse_request(text.as_bytes(), 16384)
    }

    fn status(text: &str) -> u16 {
        req(text).expect_err(text).status
    }

    #[test]
    fn a_plain_request() {
        let r = req("GET /a/b?c HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nCookie: x=1; RVSID=ab12\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.host.as_str(), r.path(), r.body),
            ("www.example.com", "/a/b?c", BodyLen::None)
        );
        assert!(r.keep_alive && r.replayable());
        assert_eq!(r.cookie("RVSID").as_deref(), Some("ab12"));
        assert_eq!(
            r.len,
            "GET /a/b?c HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nCookie: x=1; RVSID=ab12\r\n\r\n"
                .len()
        );
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a").unwrap(), None);
    }

    #[test]
    fn smuggling_shapes_and_malformed_heads_are_refused() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", 400),
            ("GET\x01 / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ];
        for (text, want) in cases {
            assert_eq!(status(text), want, "{text:?}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            431
        );
        let big = format!("GET /{} HTTP/1.1\r\n", "a".repeat(20000));
        assert_eq!(status(&big), 431);
    }

    #[test]
    fn framing_that_is_accepted() {
        let r = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyLen::Length(7));
        let r = req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyLen::Chunked);
        assert!(!r.replayable());
        let r = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_and_appends_the_client() {
        let r = req("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Forwarded-For: 203.0.113.9\r\nKeep-Alive: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        let out = String::from_utf8(r.for_upstream(Some("198.18.0.5".parse().unwrap()))).unwrap();
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9, 198.18.0.5\r\n\r\n"
        );
    }

    #[test]
    fn responses_are_framed() {
        let r = |t: &str, m: &str| parse_response(t.as_bytes(), m, 16384).unwrap().unwrap();
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET").body,
            BodyLen::Length(3)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD").body,
            BodyLen::None
        );
        let c = r(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET",
        );
        assert_eq!(c.body, BodyLen::Chunked);
        assert!(
            !String::from_utf8(c.for_client(true, &[]))
                .unwrap()
                .contains("Content-Length")
        );
        let u = r("HTTP/1.0 200 OK\r\n\r\n", "GET");
        assert_eq!((u.body, u.keep_alive), (BodyLen::UntilClose, false));
        assert!(r("HTTP/1.1 100 Continue\r\n\r\n", "POST").interim());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "GET",
                100
            )
            .is_err()
        );
    }
}
