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
    /// Host without port, lowercase, without a trailing dot ("" for an HTTP/1.0 request
    /// without one): what rules match.
    pub host: String,
    /// The Host field the real server gets: as received, or the authority of an absolute-form
    /// target (RFC 9112 §3.2.2).
    pub host_field: String,
    pub body: BodyLen,
    /// The client wants the connection kept after the response.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` field (WebSocket).
    pub upgrade: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

impl RequestHead {
    /// The path part of the target (an absolute-form target was made origin-form).
    pub fn path(&self) -> &str {
        &self.target
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

    /// The head for the real server: HTTP/1.1, hop-by-hop fields dropped (and those the
    /// client's `Connection` names, but never Host or the framing), the framing written from
    /// what rvsd parsed (so the server cannot read another length than rvsd relays), the client
    /// appended to one `X-Forwarded-For` when asked.
    pub fn for_upstream(&self, forwarded_for: Option<std::net::IpAddr>) -> Vec<u8> {
        let named = connection_tokens(&self.fields);
        let mut out = Vec::with_capacity(self.len + 64);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut xff: Vec<&[u8]> = Vec::new();
        let mut host_done = false;
        for (name, value) in &self.fields {
            let lower = name.to_ascii_lowercase();
            match lower.as_str() {
                "content-length" | "transfer-encoding" => continue,
                "x-forwarded-for" if forwarded_for.is_some() => {
                    xff.push(value);
                    continue;
                }
                // An absolute-form target named the host: it replaces the field.
                "host" => {
                    if !host_done {
                        out.extend_from_slice(b"Host: ");
                        out.extend_from_slice(self.host_field.as_bytes());
                        out.extend_from_slice(b"\r\n");
                        host_done = true;
                    }
                    continue;
                }
                "upgrade" if self.upgrade => {}
                _ if hop_by_hop(&lower) || named.contains(&lower) => continue,
                _ => {}
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !host_done && !self.host_field.is_empty() {
            out.extend_from_slice(format!("Host: {}\r\n", self.host_field).as_bytes());
        }
        if let Some(ip) = forwarded_for {
            out.extend_from_slice(b"X-Forwarded-For: ");
            for v in &xff {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(format!("{ip}\r\n").as_bytes());
        }
        write_framing(&mut out, self.body);
        if self.upgrade {
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// `Content-Length` or `Transfer-Encoding` as rvsd relays the body.
fn write_framing(out: &mut Vec<u8>, body: BodyLen) {
    match body {
        BodyLen::Length(n) => out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
        BodyLen::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyLen::None | BodyLen::UntilClose => {}
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
                let p = part.trim_matches([' ', '\t']);
                if p.is_empty() || p.len() > 18 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("Content-Length is not a number");
                }
                lengths.push(p.parse::<u64>().expect("18 digits fit"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.is_ascii() {
                return Err("Transfer-Encoding is not ASCII");
            }
            let v = std::str::from_utf8(value).map_err(|_| "Transfer-Encoding is not text")?;
            codings.extend(
                v.split(',')
                    .map(|c| c.trim_matches([' ', '\t']).to_ascii_lowercase()),
            );
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
    let mut target = req.path.expect("complete").to_owned();
    let minor = req.version.expect("complete");
    let fields = fields_of(req.headers);
    let hosts: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let (mut host, mut host_field) = match (hosts.as_slice(), minor) {
        ([one], _) => (
            host_name(one).ok_or(bad("malformed Host"))?,
            String::from_utf8_lossy(one)
                .trim_matches([' ', '\t'])
                .to_owned(),
        ),
        ([], 0) => (String::new(), String::new()),
        ([], _) => return Err(bad("HTTP/1.1 request without Host")),
        _ => return Err(bad("more than one Host")),
    };
    if let Some((authority, path)) = absolute_form(&target) {
        // The target's authority is the host (RFC 9112 §3.2.2); the server gets origin form.
        host = host_name(authority.as_bytes()).ok_or(bad("malformed authority in the target"))?;
        host_field = authority.to_owned();
        target = path.to_owned();
    } else if !(target.starts_with('/') || (method == "OPTIONS" && target == "*")) {
        // Authority-form (CONNECT) is a tunnel, not a request for these servers.
        return Err(bad("request target is not a path"));
    }
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
    // Only to WebSocket and the like: h2c would open HTTP/2 past the rules.
    let upgrade = tokens.iter().any(|t| t == "upgrade")
        && fields.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("upgrade")
                && !String::from_utf8_lossy(v)
                    .to_ascii_lowercase()
                    .contains("h2c")
        });
    Ok(Some(RequestHead {
        method,
        target,
        minor,
        fields,
        host,
        host_field,
        body,
        keep_alive,
        upgrade,
        len,
    }))
}

/// `http://authority/path` or `https://...`: the authority and the path ("/" when none).
fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((authority, if path.starts_with('/') { path } else { "/" }))
}

/// A Host value as a name to match rules on: lowercase, without its port or a trailing dot.
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
    ok.then(|| name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase())
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
    ///
    /// `dechunk`: the client speaks HTTP/1.0 and gets a chunked body as bare data up to the
    /// close, without framing fields (then `keep_alive` must be false).
    pub fn for_client(&self, keep_alive: bool, extra: &[String], dechunk: bool) -> Vec<u8> {
        let named = connection_tokens(&self.fields);
        // The framing rvsd relays by is the one the client reads: rewritten when there is a
        // body; kept as it is otherwise (a HEAD answer's Content-Length describes the GET).
        let reframed = matches!(self.body, BodyLen::Length(_) | BodyLen::Chunked);
        let framing_out = reframed && !dechunk;
        let mut out = Vec::with_capacity(self.len + 64);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).as_bytes());
        for (name, value) in &self.fields {
            let lower = name.to_ascii_lowercase();
            let skip = match lower.as_str() {
                "content-length" | "transfer-encoding" => reframed,
                "upgrade" if self.status == 101 => false,
                _ => hop_by_hop(&lower) || named.contains(&lower),
            };
            if skip {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if framing_out {
            write_framing(&mut out, self.body);
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
    fn what_the_server_gets_cannot_be_reframed_by_the_client() {
        let up = |t: &str| {
            let r = req(t).unwrap().unwrap();
            String::from_utf8(r.for_upstream(Some("198.18.0.5".parse().unwrap()))).unwrap()
        };
        // Connection may not name the framing or Host away.
        assert_eq!(
            up(
                "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, host\r\nContent-Length: 4\r\n\r\n"
            ),
            "POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.18.0.5\r\nContent-Length: 4\r\n\r\n"
        );
        assert_eq!(
            up("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            "POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.18.0.5\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        // Every X-Forwarded-For field becomes one, the client last.
        assert_eq!(
            up(
                "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
            ),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 6.6.6.6, 198.18.0.5\r\n\r\n"
        );
        // An absolute-form target names the host, and goes on in origin form.
        let r = req("GET http://Admin.Example:8080/x?y HTTP/1.1\r\nHost: public\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.host.as_str(), r.path()), ("admin.example", "/x?y"));
        assert!(
            String::from_utf8(r.for_upstream(None))
                .unwrap()
                .starts_with("GET /x?y HTTP/1.1\r\nHost: Admin.Example:8080\r\n")
        );
        assert_eq!(
            status("GET abc?u=http://x HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
        // A trailing dot is the same name.
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: api.example.com.\r\n\r\n")
                .unwrap()
                .unwrap()
                .host,
            "api.example.com"
        );
        // Framing values are ASCII, trimmed of space and tab only.
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{a0}chunked\r\n\r\n"),
            400
        );
        // h2c is no upgrade rvsd tunnels.
        let r = req("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.upgrade);
        let w =
            req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(w.upgrade);
        assert!(
            String::from_utf8(w.for_upstream(None))
                .unwrap()
                .contains("Upgrade: websocket\r\n")
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
            !String::from_utf8(c.for_client(true, &[], false))
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
