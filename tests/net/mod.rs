//! Helpers for the edge's integration tests: a server on a real loopback socket with the
//! generated certificate, a rustls client trusting it, and `DoubleBackend`, an in-test
//! stand-in for the log and ballot layers (it only records what reached it).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use urna::config::Config;
use urna::edge::{Backend, Reply, Server};

/// Bound on any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test double behind the edge. Not a backend of the real binary.
#[derive(Default)]
pub struct DoubleBackend {
    pub submits: AtomicUsize,
    pub reads: AtomicUsize,
    pub last_source: Mutex<Option<IpAddr>>,
    pub last_body: Mutex<Option<Bytes>>,
    pub queue_depth: AtomicUsize,
    /// When set, `submit` waits for a permit (to hold requests in flight).
    pub hold: Option<Arc<Semaphore>>,
    pub in_submit: AtomicUsize,
    pub max_in_submit: AtomicUsize,
    pub shut_down: AtomicBool,
    pub not_ready: AtomicBool,
}

impl Backend for DoubleBackend {
    async fn submit(&self, body: Bytes, source: IpAddr, _received_ms: u64) -> Reply {
        let now = self.in_submit.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_submit.fetch_max(now, Ordering::SeqCst);
        if let Some(hold) = &self.hold {
            let _permit = hold.acquire().await;
        }
        self.in_submit.fetch_sub(1, Ordering::SeqCst);
        *self.last_source.lock().unwrap() = Some(source);
        *self.last_body.lock().unwrap() = Some(body.clone());
        if &body[..] == b"{\"forged\":true}" {
            return Reply::error(StatusCode::UNPROCESSABLE_ENTITY, "bad_signature", "forged")
                .penalized();
        }
        let n = self.submits.fetch_add(1, Ordering::SeqCst);
        Reply::json(StatusCode::CREATED, format!("{{\"index\":{}}}", n + 1))
    }

    fn election(&self) -> Reply {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Reply::json(StatusCode::OK, r#"{"election":"test"}"#)
    }

    async fn receipt(&self, index: u64) -> Reply {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Reply::json(StatusCode::OK, format!("{{\"index\":{index}}}"))
    }

    async fn log_read(&self, path: &str) -> Reply {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Reply::with_type(StatusCode::OK, "application/octet-stream", path.to_owned())
    }

    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    fn queue_depth(&self) -> usize {
        self.queue_depth.load(Ordering::SeqCst)
    }

    async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
    }
}

/// A config on 127.0.0.1:0 with storage in `dir`; `limits` is TOML for `[limits]` and
/// `server` extra lines for `[server]`.
pub fn config(dir: &Path, server: &str, limits: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_ms = 3000
{server}
[limits]
{limits}
[election]
id = "test-2026"
roll = "{roll}"
[storage]
dir = "{dir}"
"#,
        roll = dir.join("roll.txt").display(),
        dir = dir.display()
    );
    Config::parse(&text).expect("test config")
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub plain: Option<SocketAddr>,
    pub cert: PathBuf,
    pub backend: Arc<DoubleBackend>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stopped in time")
            .unwrap();
    }

    pub fn stop_handle(&mut self) -> oneshot::Sender<()> {
        self.stop.take().unwrap()
    }

    pub async fn join(self) {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stopped in time")
            .unwrap();
    }
}

/// A server with the test double behind it, on a fresh directory (kept alive by the
/// returned guard), with `server` and `limits` TOML lines added to the base config.
pub async fn serve_double(server: &str, limits: &str) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path(), server, limits), DoubleBackend::default()).await;
    (dir, srv)
}

pub async fn start(config: Config, backend: DoubleBackend) -> Running {
    let backend = Arc::new(backend);
    let server = Server::bind(&config, backend.clone()).await.expect("bind");
    let addr = server.local_addr().unwrap();
    let plain = server.plain_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        plain,
        cert: config.tls_paths().0,
        backend,
        stop: Some(tx),
        task,
    }
}

/// A rustls client trusting the certificates in `pems`, offering `alpn`.
pub fn connector(pems: &[&Path], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pems {
        for cert in CertificateDer::pem_file_iter(pem).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` as `localhost`.
pub async fn tls_connect(
    addr: SocketAddr,
    cert: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tls_over(tcp, cert, alpn).await
}

pub async fn tls_over(
    tcp: TcpStream,
    cert: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector(&[cert], alpn).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake wait bound"))?
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// An HTTP/1.1 client on one connection.
pub struct H1 {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    pub async fn over<I>(io: I) -> H1
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        H1 { send }
    }

    pub async fn connect(addr: SocketAddr, cert: &Path) -> H1 {
        H1::over(tls_connect(addr, cert, &[b"http/1.1"]).await.unwrap()).await
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        self.send.ready().await?;
        read(self.send.send_request(req)).await
    }

    /// The status of the answer to `req` (the connection must answer).
    pub async fn status(&mut self, req: Request<Full<Bytes>>) -> StatusCode {
        self.send(req).await.unwrap().status
    }

    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}

/// An HTTP/2 client on one connection.
#[derive(Clone)]
pub struct H2 {
    send: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl H2 {
    pub async fn connect(addr: SocketAddr, cert: &Path) -> H2 {
        let tls = tls_connect(addr, cert, &[b"h2"]).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        H2 { send }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        self.send.ready().await?;
        read(self.send.send_request(req)).await
    }

    /// The status of the answer to `req` (the connection must answer).
    pub async fn status(&mut self, req: Request<Full<Bytes>>) -> StatusCode {
        self.send(req).await.unwrap().status
    }
}

/// Waits (bounded by `WAIT`) for an answer and reads it whole.
async fn read(
    resp: impl std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, hyper::Error>>,
) -> Result<Answer, hyper::Error> {
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("answer in time")?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn post_json(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub const BALLOT: &str =
    r#"{"election":"test-2026","alg":"ed25519","voter":"v","seq":1,"payload":"p","sig":"s"}"#;

/// Reads until EOF or error; true if the peer closed within `within`.
pub async fn closed_within<I: tokio::io::AsyncRead + Unpin>(io: &mut I, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Reads what the server sends until it closes (bounded by `WAIT`), as text.
pub async fn read_all<I: tokio::io::AsyncRead + Unpin>(io: &mut I) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                // One answer is enough: stop at the end of a Content-Length body.
                if let Some(text) = complete_response(&out) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete_response(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")?;
    let len: usize = text[..head_end].lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse().ok())
    })??;
    (bytes.len() >= head_end + 4 + len).then(|| text.into_owned())
}
