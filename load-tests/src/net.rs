//! Connections as a client from a chosen source address: TCP, then TLS (rustls, ring), then
//! HTTP/1.1 (the lean client in [`crate::h1`]: one task owns the stream) or HTTP/2 (hyper's
//! client connection API, so each connection is under our control rather than a pool's).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::h1;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    /// `None`: plain HTTP.
    tls_h1: Option<Arc<rustls::ClientConfig>>,
    tls_h2: Option<Arc<rustls::ClientConfig>>,
    /// `https://name:port` (or `http://`), for HTTP/2 request URIs.
    pub authority: String,
}

impl Target {
    pub fn new(addr: SocketAddr, server_name: &str, ca: Option<&Path>) -> anyhow::Result<Target> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| anyhow::anyhow!("server name {server_name:?}: {e}"))?;
        let (tls_h1, tls_h2, scheme) = match ca {
            Some(ca) => (
                Some(client_config(ca, b"http/1.1")?),
                Some(client_config(ca, b"h2")?),
                "https",
            ),
            None => (None, None, "http"),
        };
        Ok(Target {
            addr,
            server_name: name,
            tls_h1,
            tls_h2,
            authority: format!("{scheme}://{server_name}:{}", addr.port()),
        })
    }

    /// The `Host` header HTTP/1.1 requests carry: `name:port`.
    pub fn host(&self) -> &str {
        self.authority.split("://").nth(1).unwrap_or("localhost")
    }

    pub fn is_tls(&self) -> bool {
        self.tls_h1.is_some()
    }

    /// The TLS config offering `h2` (or `http/1.1`) by ALPN.
    pub fn tls(&self, http2: bool) -> Option<Arc<rustls::ClientConfig>> {
        if http2 {
            self.tls_h2.clone()
        } else {
            self.tls_h1.clone()
        }
    }
}

fn client_config(ca: &Path, alpn: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?
    {
        roots.add(cert.map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(cfg))
}

/// How long the check before a run waits for the target's TCP connect, then its TLS
/// handshake.
pub const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The target could not be reached before the run: nothing was sent, and the run did not
/// start (a run against nothing used to last its whole duration and count every failed
/// connect as an I/O error).
#[derive(Debug, thiserror::Error)]
#[error("target {addr} is unreachable: {why}")]
pub struct Unreachable {
    pub addr: SocketAddr,
    pub why: String,
}

/// One connection to the target before the run (TCP, then the TLS handshake unless plain),
/// so that a target that is down, refusing, or not the server the scenario names fails the
/// run at once, with the reason.
pub async fn preflight(target: &Target) -> Result<Io, Unreachable> {
    let fail = |why: String| Unreachable {
        addr: target.addr,
        why,
    };
    let tcp = match tokio::time::timeout(PREFLIGHT_TIMEOUT, TcpStream::connect(target.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(fail(
                "connection refused (is `urna serve` running and listening there?)".into(),
            ))
        }
        Ok(Err(e)) => return Err(fail(format!("connect: {e}"))),
        Err(_) => {
            return Err(fail(format!(
                "no answer to connect within {} s",
                PREFLIGHT_TIMEOUT.as_secs()
            )))
        }
    };
    let Some(tls) = target.tls(false) else {
        return Ok(Io::Plain(tcp));
    };
    let hs = TlsConnector::from(tls).connect(target.server_name.clone(), tcp);
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, hs).await {
        Ok(Ok(s)) => Ok(Io::Tls(Box::new(s))),
        Ok(Err(e)) => Err(fail(format!(
            "TLS handshake failed: {e} (is `ca` the server's certificate, and `server_name` \
             a name in it?)"
        ))),
        Err(_) => Err(fail(format!(
            "no TLS handshake within {} s",
            PREFLIGHT_TIMEOUT.as_secs()
        ))),
    }
}

/// The log's verifier key, from `GET /v1/election` (`log.verifier_key`) on `io`: what a
/// voter's client learns before voting, and all it needs to check a receipt offline.
pub async fn verifier_key(target: &Target, io: Io) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Log {
        verifier_key: String,
    }
    #[derive(serde::Deserialize)]
    struct Election {
        log: Log,
    }
    let mut conn = h1::Conn::new(io);
    let req = h1::encode_request(&http::Method::GET, target.host(), "/v1/election", None);
    let answer = tokio::time::timeout(PREFLIGHT_TIMEOUT, conn.send(&req))
        .await
        .map_err(|_| anyhow::anyhow!("GET /v1/election: no answer in {PREFLIGHT_TIMEOUT:?}"))?
        .map_err(|e| anyhow::anyhow!("GET /v1/election: {e}"))?;
    anyhow::ensure!(
        answer.status == 200,
        "GET /v1/election answered {} (receipts cannot be checked without the log's key; \
         set verify_receipts = false to run without)",
        answer.status
    );
    let e: Election = serde_json::from_slice(answer.body)
        .map_err(|e| anyhow::anyhow!("GET /v1/election: {e}"))?;
    Ok(e.log.verifier_key)
}

/// The `i`-th host address of `net` (wrapping), so connections spread over its addresses.
pub fn source_addr(net: &IpNet, i: usize) -> IpAddr {
    let hosts = net_size(net);
    if hosts <= 1 {
        return net.addr();
    }
    // Skip the network address itself (x.x.x.0 is valid on loopback, but it reads oddly).
    let offset = 1 + (i as u128 % (hosts - 1));
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) + offset as u32).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) + offset).into()),
    }
}

fn net_size(net: &IpNet) -> u128 {
    let bits = net.max_prefix_len() - net.prefix_len();
    if bits >= 64 {
        u64::MAX as u128
    } else {
        1u128 << bits
    }
}

/// A TCP connection from `source`.
pub async fn tcp(target: &Target, source: IpAddr) -> std::io::Result<TcpStream> {
    tcp_with(target, source, None).await
}

/// A TCP connection from `source`, with a receive buffer of `recv_buffer_bytes` when given
/// (a slow reader's small window; the kernel doubles it and keeps a floor of its own).
pub async fn tcp_with(
    target: &Target,
    source: IpAddr,
    recv_buffer_bytes: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(n) = recv_buffer_bytes {
        // Before connect: the window is agreed in the handshake.
        socket.set_recv_buffer_size(n)?;
    }
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An HTTP/1.1 connection's stream: TLS or plain TCP, owned by the lane that uses it.
pub enum Io {
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An HTTP/1.1 connection: the lean client over TLS or TCP.
pub type H1Conn = h1::Conn<Io>;

/// An HTTP/2 connection's request half (cheap to clone: every stream of a lane shares it).
pub type H2Sender = http2::SendRequest<Full<Bytes>>;

/// One open HTTP connection.
pub enum Sender {
    H1(Box<H1Conn>),
    H2(H2Sender),
}

/// Opens an HTTP connection (TLS unless the target is plain) from `source`.
pub async fn connect(target: &Target, source: IpAddr, http2: bool) -> anyhow::Result<Sender> {
    if http2 {
        Ok(Sender::H2(connect_h2(target, source).await?))
    } else {
        Ok(Sender::H1(Box::new(connect_h1(target, source).await?)))
    }
}

/// Opens an HTTP/1.1 connection: no handshake beyond TLS, no task of its own.
pub async fn connect_h1(target: &Target, source: IpAddr) -> anyhow::Result<H1Conn> {
    let stream = tcp(target, source).await?;
    let io = match target.tls(false) {
        Some(tls) => Io::Tls(Box::new(
            TlsConnector::from(tls)
                .connect(target.server_name.clone(), stream)
                .await?,
        )),
        None => Io::Plain(stream),
    };
    Ok(h1::Conn::new(io))
}

/// Opens an HTTP/2 connection; hyper drives it from a task of its own.
pub async fn connect_h2(target: &Target, source: IpAddr) -> anyhow::Result<H2Sender> {
    let stream = tcp(target, source).await?;
    match target.tls(true) {
        Some(tls) => {
            let tls = TlsConnector::from(tls)
                .connect(target.server_name.clone(), stream)
                .await?;
            h2_handshake(tls).await
        }
        None => h2_handshake(stream).await,
    }
}

async fn h2_handshake<S>(io: S) -> anyhow::Result<H2Sender>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// `Retry-After` in whole seconds, when the answer carries one (429, 503).
    pub retry_after_s: Option<u64>,
}

/// Why an HTTP/2 request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum H2Error {
    /// The server closed the connection gracefully (GOAWAY without an error, or the stream
    /// refused as it went away) before taking this request: it is safe to send again on a
    /// new connection, and the close is the server's choice (its request quota), not a fault.
    #[error("connection closed by the server: {0}")]
    Closed(hyper::Error),
    /// Anything else: a reset, a protocol error, a broken transport.
    #[error("{0}")]
    Broken(hyper::Error),
}

impl H2Error {
    fn of(e: hyper::Error) -> H2Error {
        use std::error::Error as _;
        let frame = e.source().and_then(|s| s.downcast_ref::<h2::Error>());
        let graceful = e.is_canceled()
            || e.is_closed()
            || frame.is_some_and(|h| {
                h.reason() == Some(h2::Reason::REFUSED_STREAM)
                    || (h.is_go_away() && h.reason() == Some(h2::Reason::NO_ERROR))
            });
        if graceful {
            H2Error::Closed(e)
        } else {
            H2Error::Broken(e)
        }
    }
}

/// Sends one request on an HTTP/2 connection and reads the whole answer.
pub async fn send_h2(s: &mut H2Sender, req: Request<Full<Bytes>>) -> Result<Answer, H2Error> {
    s.ready().await.map_err(H2Error::Closed)?;
    let resp: Response<Incoming> = s.send_request(req).await.map_err(H2Error::of)?;
    let status = resp.status();
    let retry_after_s = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(H2Error::Broken)?
        .to_bytes();
    Ok(Answer {
        status,
        body,
        retry_after_s,
    })
}

/// An HTTP/2 request for `path` on `target` (full URI; HTTP/1.1 requests are pre-encoded by
/// [`h1::encode_request`] instead).
pub fn request(
    target: &Target,
    method: http::Method,
    path: &str,
    body: Option<Bytes>,
) -> Request<Full<Bytes>> {
    let uri = format!("{}{path}", target.authority);
    let mut b = Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header(http::header::CONTENT_TYPE, "application/json");
    }
    // Method, URI and headers are all built from valid parts above.
    b.body(Full::new(body.unwrap_or_default()))
        .expect("valid request parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_walk_the_network_and_wrap() {
        let net: IpNet = "127.1.0.0/30".parse().unwrap();
        let got: Vec<String> = (0..4).map(|i| source_addr(&net, i).to_string()).collect();
        assert_eq!(got, ["127.1.0.1", "127.1.0.2", "127.1.0.3", "127.1.0.1"]);
        let one: IpNet = "127.0.0.9/32".parse().unwrap();
        assert_eq!(source_addr(&one, 5).to_string(), "127.0.0.9");
    }
}
