//! `HTTP_GET` / `SSL_GET`: one HTTP/1.1 GET per check over plain TCP or TLS.
//!
//! A hand-written minimal client instead of an HTTP library: a health check needs one request
//! with `Connection: close` and a status line, and everything the server sends is untrusted
//! input that must never panic or allocate without bound. Limits: response headers 64 KiB,
//! body 1 MiB (the regex is matched against at most the first 1 MiB), and the whole exchange
//! is bounded by `HttpCheck::timeout`; `hostile_servers_meet_the_bounds` shows each against a
//! server that sends endless headers, an endless chunked body, or drips bytes. hyper's
//! `client::conn::http1` gives the head bound (`max_buf_size`) but leaves a body bound to a
//! wrapper (`http_body_util::Limited`, which fails at the limit instead of judging the first
//! MiB as keepalived does) and the deadline to the caller, and adds a connection task per
//! check: no simpler for one GET per check, so the client stays.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::probe::{fmt_duration, HttpCheck, Outcome, Target};

/// Largest response head (status line + headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body read; longer bodies are truncated to this before the regex is applied.
pub const MAX_BODY: usize = 1024 * 1024;
/// Interim (1xx) responses skipped before the final one; more is a misbehaving server.
const MAX_INTERIM: usize = 8;
/// Longest chunk-size line (size, extensions, CRLF).
const MAX_CHUNK_LINE: usize = 4096;

// Progress markers, so an overall timeout can say what it was waiting for. An atomic rather
// than a `Cell` because the check future must be `Send` to run on the multi-thread runtime.
const STAGE_CONNECT: u8 = 0;
const STAGE_TLS: u8 = 1;
const STAGE_SEND: u8 = 2;
const STAGE_HEAD: u8 = 3;
const STAGE_BODY: u8 = 4;

fn stage_name(stage: u8) -> &'static str {
    match stage {
        STAGE_CONNECT => "connecting",
        STAGE_TLS => "in TLS handshake",
        STAGE_SEND => "sending request",
        STAGE_HEAD => "waiting for response headers",
        _ => "reading body",
    }
}

/// Why an HTTP(S) check failed. The text is the check's reason in logs and status.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    /// The TCP connection (the reason from the TCP check's connect).
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake or the server name.
    #[error("{0}")]
    Tls(String),
    #[error("send request: {0}")]
    Send(io::Error),
    #[error("read: {0}")]
    Read(io::Error),
    #[error("empty response (connection closed)")]
    Empty,
    /// A status outside the accepted ranges.
    #[error("HTTP {0}")]
    Status(u16),
    #[error("body did not match /{0}/")]
    BodyMismatch(String),
    /// A response that is not valid HTTP/1.1, or exceeds our bounds.
    #[error("invalid response: {0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> HttpFailure {
    HttpFailure::Invalid(s.into())
}

/// Run one HTTP(S) check. Success reason is `"HTTP <code>"`.
pub async fn check(cfg: &HttpCheck, target: &Target) -> Outcome {
    let start = Instant::now();
    let stage = AtomicU8::new(STAGE_CONNECT);
    let result = tokio::time::timeout(cfg.timeout, exchange(cfg, target, &stage)).await;
    let latency = start.elapsed();
    match result {
        Ok(Ok(code)) => Outcome::up(format!("HTTP {code}"), latency),
        Ok(Err(why)) => Outcome::down(why.to_string(), latency),
        Err(_) => Outcome::down(
            format!(
                "timeout {} {}",
                fmt_duration(cfg.timeout),
                stage_name(stage.load(Ordering::Relaxed))
            ),
            latency,
        ),
    }
}

async fn exchange(cfg: &HttpCheck, target: &Target, stage: &AtomicU8) -> Result<u16, HttpFailure> {
    let addr = target.socket_addr(cfg.connect_port);
    let tcp = super::tcp::connect(addr, cfg.bind_to, cfg.connect_timeout)
        .await
        .map_err(HttpFailure::Connect)?;
    // One small write; no reason to let Nagle hold it back. Failure is harmless.
    let _ = tcp.set_nodelay(true);
    let request = build_request(cfg, target.addr, addr.port());
    match &cfg.tls {
        None => converse(tcp, &request, cfg, stage).await,
        Some(tls) => {
            stage.store(STAGE_TLS, Ordering::Relaxed);
            let name = super::tls::server_name(cfg.virtualhost.as_deref(), target.addr)
                .map_err(HttpFailure::Tls)?;
            let stream = super::tls::connect(tls, name, tcp)
                .await
                .map_err(HttpFailure::Tls)?;
            converse(stream, &request, cfg, stage).await
        }
    }
}

/// `Host` is the virtualhost verbatim, else the address (IPv6 in brackets) with `:port` when
/// the port is not the scheme's default, as a browser would send it.
fn host_header(cfg: &HttpCheck, addr: IpAddr, port: u16) -> String {
    if let Some(vh) = &cfg.virtualhost {
        return vh.clone();
    }
    let host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let default_port = if cfg.tls.is_some() { 443 } else { 80 };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

fn build_request(cfg: &HttpCheck, addr: IpAddr, port: u16) -> Vec<u8> {
    // `path` and `virtualhost` were validated to be visible ASCII, so they cannot inject
    // header lines.
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lb-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        cfg.path,
        host_header(cfg, addr, port)
    )
    .into_bytes()
}

async fn converse<S>(
    mut io: S,
    request: &[u8],
    cfg: &HttpCheck,
    stage: &AtomicU8,
) -> Result<u16, HttpFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stage.store(STAGE_SEND, Ordering::Relaxed);
    io.write_all(request).await.map_err(HttpFailure::Send)?;
    // TLS streams buffer inside rustls until flushed.
    io.flush().await.map_err(HttpFailure::Send)?;

    stage.store(STAGE_HEAD, Ordering::Relaxed);
    let mut reader = Reader::new(io);
    let mut interim = 0;
    let head = loop {
        let head = reader.read_head().await?;
        // 100 Continue / 102 / 103 Early Hints precede the real response; 101 would be a
        // protocol switch we never asked for, so it is treated as the (wrong) final status.
        if (100..200).contains(&head.status) && head.status != 101 {
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(invalid("too many 1xx responses"));
            }
            continue;
        }
        break head;
    };
    if !cfg.status_ok(head.status) {
        return Err(HttpFailure::Status(head.status));
    }
    // Without a regex the status decides; not reading the body keeps slow or huge bodies
    // from costing time or memory.
    let Some(re) = &cfg.body_regex else {
        return Ok(head.status);
    };
    stage.store(STAGE_BODY, Ordering::Relaxed);
    let body = reader.read_body(head.framing).await?;
    if re.is_match(&body) {
        Ok(head.status)
    } else {
        Err(HttpFailure::BodyMismatch(re.as_str().to_owned()))
    }
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// 1xx, 204, 304: no body whatever the headers say.
    Empty,
    Chunked,
    Length(u64),
    /// No length information (or a non-chunked transfer coding): the body ends at EOF.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
}

/// Printable, bounded excerpt of untrusted bytes for a reason string.
fn snippet(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(40)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// Index just past the blank line that ends the head, searching from `from`. Accepts bare LF
/// line ends as well as CRLF (RFC 9112 §2.2 allows recipients to).
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&b) = buf.get(i) {
        if b == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// `HTTP/1.x SP 3DIGIT [SP reason]` → the status code.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (digits, tail) = rest.split_at_checked(3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(tail.is_empty() || tail.starts_with(b" ")) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

/// RFC 9110 token characters, for header names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn parse_head(raw: &[u8]) -> Result<Head, HttpFailure> {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)
        .ok_or_else(|| invalid(format!("bad status line {}", snippet(status_line))))?;

    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut length: Option<u64> = None;
    for line in lines {
        match line.first() {
            None => continue,
            // Obsolete line folding continues the previous value; no header we use is
            // legitimately folded, so the continuation is ignored.
            Some(b' ' | b'\t') => continue,
            Some(_) => {}
        }
        let bad_line = || invalid(format!("bad header line {}", snippet(line)));
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad_line)?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad_line());
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding of the last header decides whether the body is chunked.
            if let Some(last) = value.rsplit(|&b| b == b',').next() {
                transfer_encoding = Some(trim_ows(last).to_ascii_lowercase());
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value)
                .ok_or_else(|| invalid(format!("bad Content-Length {}", snippet(value))))?;
            if length.is_some_and(|prev| prev != n) {
                return Err(invalid("conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if let Some(te) = transfer_encoding {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        if te == b"chunked" {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Head { status, framing })
}

/// Chunk-size line (`1a;ext=x`) → size.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next().map(trim_ows)?;
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

/// Buffered reader over the connection with bounded, panic-free access to what the server
/// sent.
struct Reader<S> {
    io: S,
    buf: Vec<u8>,
    /// Bytes of `buf` before this index are consumed.
    pos: usize,
    eof: bool,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::with_capacity(8 * 1024),
            pos: 0,
            eof: false,
        }
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Read more bytes; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize, HttpFailure> {
        if self.eof {
            return Ok(0);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(16 * 1024);
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            // rustls reports a peer that closes without close_notify this way; many servers
            // do, and for a body delimited by EOF it is the normal end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.eof = true;
                Ok(0)
            }
            Err(e) => Err(HttpFailure::Read(e)),
        }
    }

    async fn read_head(&mut self) -> Result<Head, HttpFailure> {
        let mut scanned = 0;
        loop {
            if let Some(end) = head_end(self.available(), scanned) {
                let head = parse_head(self.available().get(..end).unwrap_or_default())?;
                self.consume(end);
                return Ok(head);
            }
            let have = self.available().len();
            if have > MAX_HEAD {
                return Err(invalid(format!(
                    "headers larger than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            // A terminator may straddle the old end; rescan its last bytes only.
            scanned = have.saturating_sub(3);
            if self.fill().await? == 0 {
                return Err(if have == 0 {
                    HttpFailure::Empty
                } else {
                    invalid("connection closed in headers")
                });
            }
        }
    }

    /// Append up to `n` bytes to `out`; `false` if the stream ended first.
    async fn read_n(&mut self, mut n: usize, out: &mut Vec<u8>) -> Result<bool, HttpFailure> {
        while n > 0 {
            if self.available().is_empty() && self.fill().await? == 0 {
                return Ok(false);
            }
            let avail = self.available();
            let take = n.min(avail.len());
            out.extend_from_slice(avail.get(..take).unwrap_or_default());
            self.consume(take);
            n -= take;
        }
        Ok(true)
    }

    /// One line without its line end, at most `max` bytes long.
    async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, HttpFailure> {
        loop {
            let avail = self.available();
            if let Some(nl) = avail.iter().position(|&b| b == b'\n') {
                let line = avail.get(..nl).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.consume(nl + 1);
                return Ok(line);
            }
            if avail.len() > max {
                return Err(invalid("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(invalid("connection closed in chunked body"));
            }
        }
    }

    async fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, HttpFailure> {
        let mut body = Vec::new();
        match framing {
            Framing::Empty => {}
            Framing::Length(n) => {
                let want = usize::try_from(n).unwrap_or(usize::MAX).min(MAX_BODY);
                if !self.read_n(want, &mut body).await? {
                    return Err(invalid(format!(
                        "connection closed after {} of {n} body bytes",
                        body.len()
                    )));
                }
            }
            Framing::UntilClose => {
                while body.len() < MAX_BODY {
                    if self.available().is_empty() && self.fill().await? == 0 {
                        break;
                    }
                    let avail = self.available();
                    let take = avail.len().min(MAX_BODY - body.len());
                    body.extend_from_slice(avail.get(..take).unwrap_or_default());
                    self.consume(take);
                }
            }
            Framing::Chunked => loop {
                let line = self.read_line(MAX_CHUNK_LINE).await?;
                let size = parse_chunk_size(&line)
                    .ok_or_else(|| invalid(format!("bad chunk size {}", snippet(&line))))?;
                if size == 0 {
                    // Trailers are not needed; the connection is closed anyway.
                    break;
                }
                let room = MAX_BODY - body.len();
                let take = usize::try_from(size).unwrap_or(usize::MAX).min(room);
                if !self.read_n(take, &mut body).await? {
                    return Err(invalid("connection closed in chunked body"));
                }
                if body.len() >= MAX_BODY {
                    break;
                }
                if !self.read_line(2).await?.is_empty() {
                    return Err(invalid("chunk not followed by CRLF"));
                }
            },
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::{StatusRange, TlsOptions};
    use super::super::testutil::TempDir;
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// What the test server saw of one request.
    #[derive(Debug)]
    struct Seen {
        sni: Option<String>,
        head: String,
    }

    impl Seen {
        fn host(&self) -> Option<&str> {
            host_of(&self.head)
        }
    }

    fn host_of(head: &str) -> Option<&str> {
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("host").then(|| value.trim())
        })
    }

    /// `Some(bytes)`: write them and close. `None`: read the request, then never answer.
    type Respond = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

    struct Server {
        addr: SocketAddr,
        seen: mpsc::UnboundedReceiver<Seen>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        async fn next_seen(&mut self) -> Seen {
            tokio::time::timeout(Duration::from_secs(5), self.seen.recv())
                .await
                .expect("server saw no request in time")
                .expect("server gone")
        }
    }

    async fn read_request_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        sni: Option<String>,
        respond: Respond,
        tx: mpsc::UnboundedSender<Seen>,
    ) {
        let head = read_request_head(&mut s).await;
        let reply = respond(&head);
        let _ = tx.send(Seen { sni, head });
        match reply {
            Some(bytes) => {
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
            }
            None => std::future::pending::<()>().await,
        }
    }

    async fn serve(
        tls: Option<Arc<rustls::ServerConfig>>,
        respond: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let respond: Respond = Arc::new(respond);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (respond, tx, tls) = (respond.clone(), tx.clone(), tls.clone());
                conns.spawn(async move {
                    match tls {
                        None => handle(tcp, None, respond, tx).await,
                        Some(cfg) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                            if let Ok(s) = acceptor.accept(tcp).await {
                                let sni = s.get_ref().1.server_name().map(str::to_owned);
                                handle(s, sni, respond, tx).await;
                            }
                        }
                    }
                });
            }
        });
        Server { addr, seen, task }
    }

    fn reply(bytes: &[u8]) -> impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static {
        let bytes = bytes.to_vec();
        move |_| Some(bytes.clone())
    }

    fn http(addr: SocketAddr) -> (HttpCheck, Target) {
        let mut c = HttpCheck::new("/health");
        c.connect_timeout = Duration::from_secs(2);
        c.timeout = Duration::from_secs(5);
        (c, Target::new(addr.ip(), addr.port()))
    }

    fn regex(re: &str) -> Option<regex::bytes::Regex> {
        Some(regex::bytes::Regex::new(re).unwrap())
    }

    #[tokio::test]
    async fn ok_200_and_request_shape() {
        let mut srv = serve(
            None,
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        )
        .await;
        let (c, t) = http(srv.addr);
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.reason, "HTTP 200");
        assert_eq!(out.weight, None);
        let seen = srv.next_seen().await;
        assert!(
            seen.head.starts_with("GET /health HTTP/1.1\r\n"),
            "{}",
            seen.head
        );
        assert!(
            seen.head.contains("\r\nConnection: close\r\n"),
            "{}",
            seen.head
        );
        // No virtualhost: the address and the non-default port.
        assert_eq!(
            seen.host(),
            Some(format!("127.0.0.1:{}", srv.addr.port()).as_str())
        );
    }

    #[tokio::test]
    async fn status_500_is_down() {
        let srv = serve(
            None,
            reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        let (c, t) = http(srv.addr);
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "HTTP 500");
    }

    #[tokio::test]
    async fn status_list_and_ranges() {
        let code = Arc::new(std::sync::Mutex::new(302u16));
        let c2 = code.clone();
        let srv = serve(None, move |_| {
            let code = *c2.lock().unwrap();
            Some(format!("HTTP/1.0 {code} X\r\nContent-Length: 0\r\n\r\n").into_bytes())
        })
        .await;
        let (mut c, t) = http(srv.addr);
        c.status_codes = vec![StatusRange::single(200), "300-399".parse().unwrap()];
        for (status, ok) in [
            (302, true),
            (200, true),
            (399, true),
            (204, false),
            (404, false),
        ] {
            *code.lock().unwrap() = status;
            let out = check(&c, &t).await;
            assert_eq!(out.ok, ok, "status {status}: {out:?}");
            assert_eq!(out.reason, format!("HTTP {status}"));
        }
    }

    #[tokio::test]
    async fn body_regex_match_and_mismatch() {
        let srv = serve(
            None,
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nstatus: degraded"),
        )
        .await;
        let (mut c, t) = http(srv.addr);
        c.body_regex = regex(r"\bok\b");
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert_eq!(out.reason, r"body did not match /\bok\b/");
        c.body_regex = regex("^status: degraded$");
        assert!(check(&c, &t).await.ok);
    }

    #[tokio::test]
    async fn content_length_bounds_the_body() {
        // Bytes after Content-Length are not body: an anchored regex proves it.
        let srv = serve(
            None,
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellotrailing junk"),
        )
        .await;
        let (mut c, t) = http(srv.addr);
        c.body_regex = regex("^hello$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn chunked_body_is_decoded() {
        let srv = serve(
            None,
            reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n\
                  5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n",
            ),
        )
        .await;
        let (mut c, t) = http(srv.addr);
        // Matches only the de-chunked body, not the raw chunk framing.
        c.body_regex = regex("^hello world$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn body_until_close_and_bare_lf() {
        let srv = serve(None, reply(b"HTTP/1.0 200 OK\nServer: old\n\nall good\n")).await;
        let (mut c, t) = http(srv.addr);
        c.body_regex = regex("^all good\n$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
    }

    /// A server that answers every connection with `head` and then `chunk` forever, one
    /// chunk per `every`, until the client goes; returns its address and the bytes written.
    async fn hostile(
        head: &'static [u8],
        chunk: &'static [u8],
        every: Duration,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncWriteExt as _;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = written.clone();
        tokio::spawn(async move {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = read_request_head(&mut tcp).await;
            if tcp.write_all(head).await.is_err() {
                return;
            }
            loop {
                if tcp.write_all(chunk).await.is_err() {
                    return;
                }
                count.fetch_add(chunk.len(), Ordering::Relaxed);
                if !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
            }
        });
        (addr, written)
    }

    /// Hostile servers cannot make a check hold more than its bounds (64 KiB of headers,
    /// 1 MiB of body) or last past its timeout: endless headers, an endless chunked body, a
    /// response dripped a byte at a time.
    #[tokio::test]
    async fn hostile_servers_meet_the_bounds() {
        let timeout = Duration::from_secs(2);
        // Endless headers: refused once the head passes 64 KiB, long before the timeout.
        let (addr, written) = hostile(
            b"HTTP/1.1 200 OK\r\n",
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            Duration::ZERO,
        )
        .await;
        let (mut c, t) = http(addr);
        c.timeout = timeout;
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "invalid response: headers larger than 64 KiB");
        assert!(out.latency < timeout, "{out:?}");
        assert!(
            written.load(Ordering::Relaxed) > MAX_HEAD,
            "the server did send more"
        );

        // An endless chunked body: judged on its first MiB, without waiting for an end.
        let (addr, written) = hostile(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"10\r\nok ok ok ok ok o\r\n",
            Duration::ZERO,
        )
        .await;
        let (mut c, t) = http(addr);
        c.timeout = timeout;
        c.body_regex = regex("^ok ok");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        assert!(out.latency < timeout, "{out:?}");
        assert!(written.load(Ordering::Relaxed) > MAX_BODY);

        // A drip: a byte every 50 ms never ends the head; the timeout ends the check.
        let (addr, _) = hostile(b"HTTP/1.1 200 OK\r\n", b"X", Duration::from_millis(50)).await;
        let (mut c, t) = http(addr);
        c.timeout = timeout;
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "timeout 2s waiting for response headers");
        assert!(
            out.latency >= timeout && out.latency < timeout * 2,
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn interim_100_continue_is_skipped() {
        let srv = serve(
            None,
            reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        )
        .await;
        let (mut c, t) = http(srv.addr);
        c.body_regex = regex("^ok$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn body_is_read_up_to_1mib_only() {
        // Byte number MAX_BODY is the only 'z'; everything after it is 'b' and a marker.
        let mut body = vec![b'a'; MAX_BODY - 1];
        body.push(b'z');
        body.extend(std::iter::repeat_n(b'b', MAX_BODY));
        body.extend_from_slice(b"MARKER");
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(&body);
        let srv = serve(None, reply(&resp)).await;
        let (mut c, t) = http(srv.addr);
        // Nothing beyond 1 MiB is seen...
        for re in ["MARKER", "b"] {
            c.body_regex = regex(re);
            let out = check(&c, &t).await;
            assert_eq!(
                (out.ok, out.reason),
                (false, format!("body did not match /{re}/"))
            );
        }
        // ...and the body seen ends exactly at byte 1 MiB.
        c.body_regex = regex("^a+z$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let srv = serve(None, |_| None).await;
        let (mut c, t) = http(srv.addr);
        c.timeout = Duration::from_millis(300);
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "timeout 300ms waiting for response headers");
        assert!(
            out.latency >= Duration::from_millis(300),
            "{:?}",
            out.latency
        );
        assert!(out.latency < Duration::from_secs(3), "{:?}", out.latency);
    }

    #[tokio::test]
    async fn slow_body_times_out_in_body_stage() {
        // Headers arrive, the promised body never does.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_request_head(&mut s).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let (mut c, t) = http(addr);
        c.timeout = Duration::from_millis(300);
        c.body_regex = regex("abc");
        let out = check(&c, &t).await;
        assert_eq!(out.reason, "timeout 300ms reading body");
        task.abort();
    }

    #[tokio::test]
    async fn garbage_responses_fail_with_reason() {
        let mut huge_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while huge_head.len() <= MAX_HEAD + 10 {
            huge_head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty response (connection closed)"),
            (
                b"garbage\r\n\r\n".to_vec(),
                "invalid response: bad status line \"garbage\"",
            ),
            (
                b"\x00\xff\xfe binary".to_vec(),
                "invalid response: connection closed in headers",
            ),
            (
                b"\x16\x03\x01\x00\x05\n\n".to_vec(),
                "invalid response: bad status line",
            ),
            (
                b"HTTP/1.1 abc OK\r\n\r\n".to_vec(),
                "invalid response: bad status line",
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n".to_vec(),
                "invalid response: bad status line",
            ),
            (
                b"HTTP/1.1 999 OK\r\n\r\n".to_vec(),
                "invalid response: bad status line",
            ),
            (
                b"HTTP/2 200\r\n\r\n".to_vec(),
                "invalid response: bad status line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n".to_vec(),
                "invalid response: bad header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n".to_vec(),
                "invalid response: bad header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(),
                "invalid response: bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
                "invalid response: bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
                "invalid response: conflicting Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
                "invalid response: connection closed after 3 of 10 body bytes",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                "invalid response: bad chunk size \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"
                    .to_vec(),
                "invalid response: bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc".to_vec(),
                "invalid response: connection closed in chunked body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY\r\n0\r\n\r\n"
                    .to_vec(),
                "invalid response: chunk not followed by CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".to_vec(),
                "invalid response: connection closed in chunked body",
            ),
            (huge_head, "invalid response: headers larger than 64 KiB"),
            (
                [
                    b"HTTP/1.1 100 Continue\r\n\r\n".repeat(9),
                    b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                ]
                .concat(),
                "invalid response: too many 1xx",
            ),
        ];
        for (bytes, want) in cases {
            let srv = serve(None, reply(&bytes)).await;
            let (mut c, t) = http(srv.addr);
            c.body_regex = regex("abc");
            let out = check(&c, &t).await;
            assert!(!out.ok, "{:?} accepted", String::from_utf8_lossy(&bytes));
            assert!(
                out.reason.starts_with(want),
                "{:?}: got {:?}, want {want:?}",
                String::from_utf8_lossy(&bytes),
                out.reason
            );
        }
    }

    #[tokio::test]
    async fn host_header_is_the_virtualhost() {
        // The server itself enforces the Host it expects.
        let mut srv = serve(None, |head| {
            let code = if host_of(head) == Some("www.example.test") {
                200
            } else {
                421
            };
            Some(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").into_bytes())
        })
        .await;
        let (mut c, t) = http(srv.addr);
        let out = check(&c, &t).await;
        assert_eq!(out.reason, "HTTP 421");
        assert_eq!(
            srv.next_seen().await.host(),
            Some(format!("127.0.0.1:{}", srv.addr.port()).as_str())
        );
        c.virtualhost = Some("www.example.test".into());
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(srv.next_seen().await.host(), Some("www.example.test"));
    }

    #[test]
    fn host_header_defaults() {
        let mut c = HttpCheck::new("/");
        assert_eq!(host_header(&c, IpAddr::from([10, 0, 0, 1]), 80), "10.0.0.1");
        assert_eq!(
            host_header(&c, IpAddr::from([10, 0, 0, 1]), 8080),
            "10.0.0.1:8080"
        );
        assert_eq!(
            host_header(&c, "2001:db8::1".parse().unwrap(), 80),
            "[2001:db8::1]"
        );
        c.tls = Some(TlsOptions::default());
        assert_eq!(
            host_header(&c, IpAddr::from([10, 0, 0, 1]), 443),
            "10.0.0.1"
        );
        assert_eq!(
            host_header(&c, IpAddr::from([10, 0, 0, 1]), 80),
            "10.0.0.1:80"
        );
    }

    #[tokio::test]
    async fn connection_refused() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let (c, t) = http(addr);
        let out = check(&c, &t).await;
        assert_eq!(out.reason, "connection refused");
    }

    // ---- HTTPS ----

    struct Pki {
        ca_pem: String,
        server: Arc<rustls::ServerConfig>,
    }

    /// A private CA and a leaf for `health.test` and `127.0.0.1`, so both the "accept anything"
    /// path and real chain + name verification can be exercised.
    fn pki() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lb test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["health.test".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &*ca)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
        Pki {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    async fn https_server(pki: &Pki) -> Server {
        serve(Some(pki.server.clone()), |head| {
            let body = format!("host={}", host_of(head).unwrap_or("-"));
            Some(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        })
        .await
    }

    fn https(addr: SocketAddr, verify: bool) -> (HttpCheck, Target) {
        let (mut c, t) = http(addr);
        c.tls = Some(TlsOptions {
            verify,
            ca_file: None,
        });
        (c, t)
    }

    #[tokio::test]
    async fn https_self_signed_without_verification_sends_sni() {
        let pki = pki();
        let mut srv = https_server(&pki).await;
        let (mut c, t) = https(srv.addr, false);
        c.virtualhost = Some("health.test".into());
        c.body_regex = regex("^host=health.test$");
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        let seen = srv.next_seen().await;
        assert_eq!(seen.sni.as_deref(), Some("health.test"));
        assert_eq!(seen.host(), Some("health.test"));

        // Without a virtualhost the name is the address: no SNI (it cannot carry an IP).
        c.virtualhost = None;
        c.body_regex = None;
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        let seen = srv.next_seen().await;
        assert_eq!(seen.sni, None);
        assert_eq!(
            seen.host(),
            Some(format!("127.0.0.1:{}", srv.addr.port()).as_str())
        );
    }

    #[tokio::test]
    async fn https_verification_rejects_unknown_issuer() {
        let pki = pki();
        let srv = https_server(&pki).await;
        let (mut c, t) = https(srv.addr, true);
        c.virtualhost = Some("health.test".into());
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert!(
            out.reason
                .starts_with("TLS handshake: invalid peer certificate: UnknownIssuer"),
            "{}",
            out.reason
        );
    }

    #[tokio::test]
    async fn https_verification_with_private_ca() {
        let pki = pki();
        let srv = https_server(&pki).await;
        let dir = TempDir::new();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).unwrap();
        let (mut c, t) = https(srv.addr, true);
        c.tls = Some(TlsOptions {
            verify: true,
            ca_file: Some(ca_file),
        });
        // Valid chain, valid name (DNS SAN).
        c.virtualhost = Some("health.test".into());
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        // Valid chain, valid name (IP SAN).
        c.virtualhost = None;
        let out = check(&c, &t).await;
        assert!(out.ok, "{out:?}");
        // Valid chain, wrong name: verification really checks names.
        c.virtualhost = Some("other.test".into());
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert!(out.reason.contains("not valid for name"), "{}", out.reason);
    }

    #[tokio::test]
    async fn https_to_plain_http_server_fails() {
        // A plain HTTP server that answers (an error page) as soon as bytes arrive.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            }
        });
        let (c, t) = https(addr, false);
        let out = check(&c, &t).await;
        assert!(!out.ok);
        assert!(out.reason.starts_with("TLS handshake: "), "{}", out.reason);
        task.abort();
    }

    #[tokio::test]
    async fn tls_handshake_timeout_names_the_stage() {
        // Accepts TCP but never speaks TLS.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            loop {
                if let Ok((s, _)) = listener.accept().await {
                    held.push(s);
                }
            }
        });
        let (mut c, t) = https(addr, false);
        c.timeout = Duration::from_millis(300);
        let out = check(&c, &t).await;
        assert_eq!(out.reason, "timeout 300ms in TLS handshake");
        task.abort();
    }

    #[test]
    fn parsers_never_panic_on_prefixes() {
        // Every prefix of a valid response, plus a byte-flipped variant, must parse or fail
        // cleanly.
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        for i in 0..=resp.len() {
            let _ = parse_head(&resp[..i]);
            let _ = head_end(&resp[..i], i.saturating_sub(3));
            let mut flipped = resp[..i].to_vec();
            if let Some(b) = flipped.last_mut() {
                *b ^= 0xff;
            }
            let _ = parse_head(&flipped);
        }
        assert_eq!(parse_chunk_size(b"1A;x=y"), Some(26));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 204No"), None);
    }
}
