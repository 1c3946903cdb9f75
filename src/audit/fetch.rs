//! Where the auditor reads a log's public files: a server's read side over HTTPS
//! (`/log/checkpoint`, `/log/tile/...`) or a local mirror directory laid out like `/log/`.
//!
//! Every fetch is bounded: a time limit for the whole request (connect, TLS, answer, body), a
//! size limit per resource checked before and while the body is read, a cap on connections
//! open at once, and a pace below the server's default per-source read rate. Nothing is
//! retried silently: a transport error, a timeout or an unexpected status fails the fetch; a
//! 429/503 with `Retry-After` is waited out, said on stderr each time, at most a bounded
//! number of times.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::log::tiles::Resource;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source does not have it (HTTP 404, or no such file in the mirror).
    #[error("not found")]
    NotFound,
    #[error("larger than the {max} bytes any such resource may be")]
    TooLarge { max: usize },
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("no complete answer within {0} ms")]
    Timeout(u64),
    #[error("still rate-limited after {0} waits")]
    RateLimited(u32),
    #[error("{0}")]
    Io(String),
}

/// Bounds on fetching (flags of `urna audit`).
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Whole-request time limit: connect, handshake, answer and body. Without it one stalled
    /// server would hang the audit forever.
    pub timeout_ms: u64,
    /// Connections (and so requests) open at once. Bounds the auditor's memory (each request
    /// may hold a 16 MiB bundle) and its load on the server.
    pub max_connections: usize,
    /// Requests started per second. The server's default read limit is 20/s per source:
    /// pacing below it keeps an audit from being refused instead of slowed.
    pub max_requests_per_s: u32,
    /// How many 429/503 answers are waited out (each said on stderr) before giving up.
    pub max_rate_limit_waits: u32,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after_s: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            timeout_ms: 30_000,
            max_connections: 4,
            max_requests_per_s: 15,
            max_rate_limit_waits: 100,
            max_retry_after_s: 60,
        }
    }
}

/// A log's public files.
pub enum Source {
    /// A mirror directory: `<dir>/checkpoint`, `<dir>/tile/0/000`, `<dir>/tile/entries/...`.
    Dir(PathBuf),
    Https(Box<HttpsSource>),
}

impl Source {
    /// The resource at `path` (after `/log/`), at most `max_bytes` long. `path` must be a
    /// tlog-tiles resource path ([`Resource::parse`]): nothing else is ever read, so no
    /// path can step outside the mirror.
    pub async fn get(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        if Resource::parse(path).is_none() {
            return Err(FetchError::Io(format!("{path:?} is not a log resource")));
        }
        match self {
            Source::Dir(dir) => read_file(&dir.join(path), max_bytes).await,
            Source::Https(h) => h.get(path, max_bytes).await,
        }
    }

    /// Where the files come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::Https(h) => format!("https://{}{}log/", h.authority, h.base_path),
        }
    }
}

async fn read_file(path: &Path, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
    // Sized from the file's length, read on a blocking thread with std: tokio's
    // `read_to_end` under a `take(max_bytes + 1)` held ~16 MiB (the bundle bound) for each
    // bundle in flight, whatever the bundle's size (measured: max RSS 798 MB at
    // `--bundles-ahead 32`, 250 MB at 1, auditing 1,000,001 entries).
    let path = path.to_owned();
    let read = move || {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(FetchError::Io(format!("{}: {e}", path.display()))),
        };
        let io = |e: std::io::Error| FetchError::Io(format!("{}: {e}", path.display()));
        let len = file.metadata().map_err(io)?.len();
        if len > max_bytes as u64 {
            return Err(FetchError::TooLarge { max: max_bytes });
        }
        // At most `max_bytes`, checked above.
        let mut out = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, max_bytes as u64 + 1),
            &mut out,
        )
        .map_err(io)?;
        if out.len() > max_bytes {
            return Err(FetchError::TooLarge { max: max_bytes });
        }
        Ok(out)
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| FetchError::Io(format!("reading a file: {e}")))?
}

/// Writes `bytes` as `<dir>/<path>` (a mirror of what was fetched).
pub async fn save(dir: &Path, path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let to = dir.join(path);
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::write(to, bytes).await
}

type Conn = SendRequest<Empty<Bytes>>;

/// Longest an idle connection is kept for reuse. Well under the server's default
/// `keep_alive_idle_ms` (30 s), so a request is never sent on a connection the server is
/// closing at that moment (which would fail the fetch, since nothing is retried).
const MAX_IDLE_REUSE: Duration = Duration::from_secs(5);

/// A server's read side over HTTPS (HTTP/1.1, rustls with ring).
pub struct HttpsSource {
    /// `host[:port]` as given, for the Host header and messages.
    authority: String,
    /// Where to connect.
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    /// The URL's path, ending in `/`; resources are under `<base_path>log/`.
    base_path: String,
    tls: TlsConnector,
    limits: FetchLimits,
    /// Connections open and idle since the instant beside them, reused for the next
    /// request.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// One permit per connection in use: at most `max_connections` at once.
    permits: Semaphore,
    /// When the next request may start (pacing).
    next_start: tokio::sync::Mutex<Instant>,
}

/// Why an HTTPS source could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--url {0:?}: {1}")]
    Url(String, &'static str),
    #[error("--ca {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
}

impl HttpsSource {
    /// A source for `url` (`https://host[:port][/prefix/]`), trusting the certificates in
    /// `ca` (PEM) if given, else the Mozilla roots compiled in (webpki-roots).
    pub fn new(
        url: &str,
        ca: Option<&Path>,
        limits: FetchLimits,
    ) -> Result<HttpsSource, SetupError> {
        let bad = |why| SetupError::Url(url.to_owned(), why);
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("must start with https://"));
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| bad("bad host"))?;
        let mut base_path = uri.path().to_owned();
        if !base_path.ends_with('/') {
            base_path.push('/');
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let ca_err = |reason: String| SetupError::Ca {
                    path: path.display().to_string(),
                    reason,
                };
                let certs =
                    CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
                for cert in certs {
                    roots
                        .add(cert.map_err(|e| ca_err(e.to_string()))?)
                        .map_err(|e| ca_err(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ca_err("no certificate in the file".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let max_connections = limits.max_connections.max(1);
        Ok(HttpsSource {
            authority: authority.as_str().to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(443),
            server_name,
            base_path,
            tls: TlsConnector::from(Arc::new(config)),
            limits,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections),
            next_start: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    async fn get(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        let mut waits = 0u32;
        // Bounded: each turn either returns or counts one wait, up to max_rate_limit_waits.
        loop {
            self.pace().await;
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| FetchError::Io("closed".into()))?;
            let answer = tokio::time::timeout(timeout, self.once(path, max_bytes)).await;
            drop(permit);
            match answer {
                Err(_) => return Err(FetchError::Timeout(self.limits.timeout_ms)),
                Ok(Err(Answer::Busy(retry_after_s))) => {
                    if waits >= self.limits.max_rate_limit_waits {
                        return Err(FetchError::RateLimited(waits));
                    }
                    waits += 1;
                    let wait_s = retry_after_s.clamp(1, self.limits.max_retry_after_s.max(1));
                    eprintln!(
                        "audit: {path}: the server is rate-limiting or busy; waiting {wait_s} s (wait {waits} of at most {})",
                        self.limits.max_rate_limit_waits
                    );
                    tokio::time::sleep(Duration::from_secs(wait_s)).await;
                }
                Ok(Err(Answer::Failed(e))) => return Err(e),
                Ok(Ok(body)) => return Ok(body),
            }
        }
    }

    /// Waits for this request's turn under `max_requests_per_s`.
    async fn pace(&self) {
        let interval = Duration::from_secs(1) / self.limits.max_requests_per_s.max(1);
        let start = {
            let mut next = self.next_start.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + interval;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }

    async fn connect(&self) -> Result<Conn, FetchError> {
        let io = |e: std::io::Error| FetchError::Io(format!("{}: {e}", self.authority));
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(io)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| FetchError::Io(format!("{}: {e}", self.authority)))?;
        // Ends when the connection closes (dropped `send`, server close or error).
        tokio::spawn(conn);
        Ok(send)
    }

    async fn once(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, Answer> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .filter(|(c, since)| !c.is_closed() && since.elapsed() < MAX_IDLE_REUSE)
            .map(|(c, _)| c);
        let mut conn = match idle {
            Some(c) => c,
            None => self.connect().await.map_err(Answer::Failed)?,
        };
        let failed = |e: hyper::Error| Answer::Failed(FetchError::Io(e.to_string()));
        conn.ready().await.map_err(failed)?;
        let req = Request::get(format!("{}log/{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header(header::USER_AGENT, "urna-audit")
            .body(Empty::<Bytes>::new())
            .map_err(|e| Answer::Failed(FetchError::Io(e.to_string())))?;
        let resp = conn.send_request(req).await.map_err(failed)?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            // The connection is dropped rather than reused: the body is not read.
            return Err(Answer::Busy(retry_after));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(Answer::Failed(FetchError::NotFound));
        }
        if status != StatusCode::OK {
            return Err(Answer::Failed(FetchError::Status(status.as_u16())));
        }
        let too_large = || Answer::Failed(FetchError::TooLarge { max: max_bytes });
        let announced = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > max_bytes as u64) {
            return Err(too_large());
        }
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    Answer::Failed(FetchError::Io(e.to_string()))
                }
            })?
            .to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((conn, Instant::now()));
        Ok(body.to_vec())
    }
}

/// One request's outcome besides a body.
enum Answer {
    /// 429 or 503, with the `Retry-After` seconds (1 if absent).
    Busy(u64),
    Failed(FetchError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_with_a_host() {
        let l = FetchLimits::default;
        assert!(HttpsSource::new("http://localhost/", None, l()).is_err());
        assert!(HttpsSource::new("https:///x", None, l()).is_err());
        assert!(HttpsSource::new("https://localhost/?a=1", None, l()).is_err());
        let s = HttpsSource::new("https://127.0.0.1:8443", None, l()).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.base_path.as_str()),
            ("127.0.0.1", 8443, "/")
        );
        let s = HttpsSource::new("https://[::1]/mirror", None, l()).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.base_path.as_str()),
            ("::1", 443, "/mirror/")
        );
    }

    #[tokio::test]
    async fn a_mirror_serves_only_log_paths_and_bounds_sizes() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "tile/entries/000.p/1", b"abc")
            .await
            .unwrap();
        let src = Source::Dir(dir.path().to_owned());
        assert_eq!(src.get("tile/entries/000.p/1", 3).await.unwrap(), b"abc");
        assert!(matches!(
            src.get("tile/entries/000.p/1", 2).await,
            Err(FetchError::TooLarge { max: 2 })
        ));
        assert!(matches!(
            src.get("checkpoint", 10).await,
            Err(FetchError::NotFound)
        ));
        assert!(matches!(
            src.get("../etc/passwd", 10).await,
            Err(FetchError::Io(_))
        ));
    }
}
