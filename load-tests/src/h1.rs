//! A lean HTTP/1.1 client connection: one request at a time on a keep-alive stream that the
//! caller's task owns, requests pre-encoded, answers parsed with `httparse`.
//!
//! Hand-written on purpose. hyper's client costs a second task per connection and two
//! channel hops per request (mpsc to the connection task, oneshot back), plus a `Request`,
//! a `HeaderMap` and a timer per request: ~16 µs of CPU per answer here. urna-sim shares the
//! 2 cores with the server it measures, so every µs it spends is taken from the server. This
//! client writes one pre-built buffer and reads the answer in the same task. Only the
//! framing is ours: the head is parsed by `httparse`, hyper's own parser. HTTP/2 stays on
//! hyper's client.
//!
//! Framing (RFC 9112 §6.3): 1xx interim answers are skipped; 204 and 304 have no body;
//! `Transfer-Encoding: chunked` is decoded (any other transfer coding is refused, never
//! guessed at); else `Content-Length`; else the body runs to the close. Every read is
//! bounded: the head by [`Limits::max_head_bytes`], the body by [`Limits::max_body_bytes`].

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bounds on what one answer may make the client hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest answer head (status line and headers). Urna's heads are ~150 bytes; a peer
    /// that never ends its head must not grow the buffer without end.
    pub max_head_bytes: usize,
    /// Largest answer body. A receipt is ~2.2 KB; a peer announcing more than this is refused
    /// before anything is read.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Most header lines one answer may carry (Urna sends fewer than 10).
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (hex size and extensions). Extensions are legal but unused; a
/// line this long is an attack or a misframe.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Read buffer to start with: a receipt answer fits, so it never grows for Urna.
const INITIAL_BUFFER_BYTES: usize = 8 * 1024;

/// Why an answer could not be read. Every variant ends the connection: after any of them
/// the stream's framing is unknown.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The connection ended before any byte of the answer arrived (EOF, reset, or a write
    /// refused): on a keep-alive connection that had already carried answers, the server
    /// closed it between requests (its `max_requests_per_connection`, an idle timeout), and
    /// the request is safe to send again on a new one. A head cut short is [`Truncated`].
    ///
    /// [`Truncated`]: H1Error::Truncated
    #[error("connection closed before any byte of the answer")]
    Closed,
    #[error("connection closed in the middle of the answer")]
    Truncated,
    #[error("answer head over {0} bytes")]
    HeadTooLarge(usize),
    #[error("answer body over {0} bytes")]
    BodyTooLarge(usize),
    #[error("malformed answer head: {0}")]
    Malformed(String),
    #[error("malformed chunked body")]
    BadChunk,
    #[error("unsupported answer framing: {0}")]
    Unsupported(String),
}

/// One answer, its body borrowed from the connection's buffer until the next request.
#[derive(Debug)]
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// The server ends the connection after this answer (`Connection: close`, HTTP/1.0
    /// without keep-alive, or a body delimited by the close).
    pub close: bool,
    /// `Retry-After` in whole seconds, when the answer carries one (429, 503). An HTTP date
    /// is not read: Urna sends seconds.
    pub retry_after_s: Option<u64>,
}

/// One request, whole: request line, `Host`, `Content-Type` and `Content-Length` when there
/// is a body, then the body. Built once, before the clock, and written as is on every send.
pub fn encode_request(method: &Method, host: &str, path: &str, body: Option<&[u8]>) -> Bytes {
    let body_len = body.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(128 + path.len() + host.len() + body_len);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    match body {
        Some(body) => {
            out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(body);
        }
        None if method == Method::GET || method == Method::HEAD => {
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    Bytes::from(out)
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No length given: the body runs until the server closes.
    UntilClose,
}

/// What the head says, copied out of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    /// A 1xx interim answer: no body, the real answer follows.
    interim: bool,
    framing: Framing,
    close: bool,
    retry_after_s: Option<u64>,
}

/// Parses a head at the start of `buf`; `None` while it is incomplete. Pure: no I/O.
fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head_bytes {
                return Err(H1Error::HeadTooLarge(limits.max_head_bytes));
            }
            return Ok(None);
        }
        Err(e) => return Err(H1Error::Malformed(e.to_string())),
    };
    // Decided on the head's own size, so the outcome never depends on how reads split it.
    if len > limits.max_head_bytes {
        return Err(H1Error::HeadTooLarge(limits.max_head_bytes));
    }
    // Complete heads always carry both (httparse's contract).
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut close = http10;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut retry_after_s = None;
    for h in resp.headers.iter() {
        let value =
            std::str::from_utf8(h.value).map_err(|_| H1Error::Malformed("non-UTF-8 value".into()));
        if h.name.eq_ignore_ascii_case("connection") {
            for token in value?.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // Repeated or listed values must all agree (RFC 9110 §8.6), else the framing is
            // ambiguous: refuse rather than pick one.
            for v in value?.split(',').map(str::trim) {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(H1Error::Malformed(format!("content-length {v:?}")));
                }
                // Too many digits for usize is far over any limit.
                let n = v.parse::<usize>().unwrap_or(usize::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Malformed("conflicting content-length".into()));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after_s = value?.trim().parse::<u64>().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value?.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                // `chunked` must be the last coding and we asked for no other (no TE header).
                if chunked || !coding.eq_ignore_ascii_case("chunked") {
                    return Err(H1Error::Unsupported(format!("transfer-encoding {coding}")));
                }
                chunked = true;
            }
        }
    }
    let framing = match status {
        101 => return Err(H1Error::Unsupported("101 switching protocols".into())),
        100..=199 => Framing::Length(0),
        204 | 304 => Framing::Length(0),
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        _ if chunked => Framing::Chunked,
        _ => match length {
            Some(n) if n > limits.max_body_bytes => {
                return Err(H1Error::BodyTooLarge(limits.max_body_bytes))
            }
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        },
    };
    let close = close || framing == Framing::UntilClose;
    Ok(Some(Head {
        len,
        status,
        interim: (100..=199).contains(&status),
        framing,
        close,
        retry_after_s,
    }))
}

/// One client connection. `S` is the stream (TLS or plain TCP; a duplex pipe in tests).
pub struct Conn<S> {
    io: S,
    limits: Limits,
    /// Bytes read from the stream; `buf[start..end]` are not yet consumed. What follows one
    /// answer (pipelined bytes) stays here for the next.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A chunked body, decoded. Reused across answers.
    dechunked: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Conn<S> {
        Conn::with_limits(io, Limits::default())
    }

    pub fn with_limits(io: S, limits: Limits) -> Conn<S> {
        Conn {
            io,
            limits,
            buf: vec![0; INITIAL_BUFFER_BYTES],
            start: 0,
            end: 0,
            dechunked: Vec::new(),
        }
    }

    /// The stream, to hold or read by hand (bytes buffered past the last answer are dropped).
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Writes one pre-encoded request (one `write_all`, then a flush for TLS) and reads its
    /// answer.
    pub async fn send(&mut self, request: &[u8]) -> Result<Answer<'_>, H1Error> {
        let written = async {
            self.io.write_all(request).await?;
            self.io.flush().await
        };
        if let Err(e) = written.await {
            // Nothing of an answer can have arrived: the peer was gone before we asked.
            return Err(if is_hangup(&e) && self.start == self.end {
                H1Error::Closed
            } else {
                H1Error::Io(e)
            });
        }
        self.read_answer().await
    }

    /// Reads the next final answer (skipping 1xx), leaving any bytes after it buffered.
    pub async fn read_answer(&mut self) -> Result<Answer<'_>, H1Error> {
        let head = loop {
            let head = loop {
                if let Some(head) = parse_head(&self.buf[self.start..self.end], &self.limits)? {
                    break head;
                }
                let nothing_yet = self.start == self.end;
                match self.read_more(self.end - self.start + 1).await {
                    Ok(true) => {}
                    Ok(false) if nothing_yet => return Err(H1Error::Closed),
                    Ok(false) => return Err(H1Error::Truncated),
                    // A reset, or TLS's EOF without close_notify, before the answer began
                    // is the same hang-up as a clean EOF.
                    Err(H1Error::Io(e)) if nothing_yet && is_hangup(&e) => {
                        return Err(H1Error::Closed)
                    }
                    Err(e) => return Err(e),
                }
            };
            self.start += head.len;
            if !head.interim {
                break head;
            }
        };
        let body = match head.framing {
            Framing::Length(n) => {
                if !self.read_more(n).await? {
                    return Err(H1Error::Truncated);
                }
                let at = self.start;
                self.start += n;
                Body::Buffered(at, n)
            }
            Framing::Chunked => {
                self.read_chunked().await?;
                Body::Dechunked
            }
            Framing::UntilClose => {
                while self.read_more(self.end - self.start + 1).await? {
                    if self.end - self.start > self.limits.max_body_bytes {
                        return Err(H1Error::BodyTooLarge(self.limits.max_body_bytes));
                    }
                }
                let (at, n) = (self.start, self.end - self.start);
                self.start = self.end;
                Body::Buffered(at, n)
            }
        };
        Ok(Answer {
            status: head.status,
            body: match body {
                Body::Buffered(at, n) => &self.buf[at..at + n],
                Body::Dechunked => &self.dechunked,
            },
            close: head.close,
            retry_after_s: head.retry_after_s,
        })
    }

    /// Decodes a chunked body into `dechunked`, consuming it and its trailers.
    async fn read_chunked(&mut self) -> Result<(), H1Error> {
        self.dechunked.clear();
        loop {
            let size = loop {
                let line = &self.buf[self.start..self.end];
                match httparse::parse_chunk_size(line) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if line.len() < MAX_CHUNK_LINE_BYTES => {
                        if !self.read_more(line.len() + 1).await? {
                            return Err(H1Error::Truncated);
                        }
                    }
                    _ => return Err(H1Error::BadChunk),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > self.limits.max_body_bytes - self.dechunked.len() {
                return Err(H1Error::BodyTooLarge(self.limits.max_body_bytes));
            }
            // The data, then its CRLF.
            if !self.read_more(size + 2).await? {
                return Err(H1Error::Truncated);
            }
            let data = &self.buf[self.start..self.start + size + 2];
            if &data[size..] != b"\r\n" {
                return Err(H1Error::BadChunk);
            }
            self.dechunked.extend_from_slice(&data[..size]);
            self.start += size + 2;
        }
    }

    /// Skips the trailer section after the last chunk, up to its blank line.
    async fn skip_trailers(&mut self) -> Result<(), H1Error> {
        let mut skipped = 0;
        loop {
            let rest = &self.buf[self.start..self.end];
            match rest.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(i) => {
                    self.start += i + 2;
                    skipped += i + 2;
                }
                None => {
                    if skipped + rest.len() > self.limits.max_head_bytes {
                        return Err(H1Error::HeadTooLarge(self.limits.max_head_bytes));
                    }
                    if !self.read_more(rest.len() + 1).await? {
                        return Err(H1Error::Truncated);
                    }
                }
            }
            if skipped > self.limits.max_head_bytes {
                return Err(H1Error::HeadTooLarge(self.limits.max_head_bytes));
            }
        }
    }

    /// Reads until at least `n` unconsumed bytes are buffered; false if the stream ended
    /// first. Callers bound `n` (head limit, body limit), so the buffer stays bounded.
    async fn read_more(&mut self, n: usize) -> Result<bool, H1Error> {
        while self.end - self.start < n {
            if self.start + n > self.buf.len() {
                // Move what is unconsumed to the front, then grow if that is not enough.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if n > self.buf.len() {
                    let grown = n.max(self.buf.len() * 2);
                    self.buf.resize(grown, 0);
                }
            }
            let got = self.io.read(&mut self.buf[self.end..]).await?;
            if got == 0 {
                return Ok(false);
            }
            self.end += got;
        }
        Ok(true)
    }
}

/// The peer hung up: an EOF (TLS without close_notify), a reset, or a write to a closed
/// socket.
fn is_hangup(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Where a finished answer's body is.
enum Body {
    /// `buf[at..at + len]`.
    Buffered(usize, usize),
    Dechunked,
}

#[cfg(test)]
mod tests;
