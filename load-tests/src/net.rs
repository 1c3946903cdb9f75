//! Connections as a client from a chosen source address: TCP, then TLS (rustls, ring), then
//! HTTP/1.1 or HTTP/2 (hyper's client connection API, so each connection is under our control
//! rather than a pool's).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

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
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One HTTP connection's request half.
pub enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// Opens an HTTP connection (TLS unless the target is plain) from `source`.
pub async fn connect(target: &Target, source: IpAddr, http2: bool) -> anyhow::Result<Sender> {
    let stream = tcp(target, source).await?;
    match target.tls(http2) {
        Some(tls) => {
            let tls = TlsConnector::from(tls)
                .connect(target.server_name.clone(), stream)
                .await?;
            handshake(tls, http2).await
        }
        None => handshake(stream, http2).await,
    }
}

async fn handshake<S>(io: S, http2: bool) -> anyhow::Result<Sender>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if http2 {
        let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Ok(Sender::H2(send))
    } else {
        let (send, conn) = http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(send))
    }
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Sender {
    pub fn is_http2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let resp: Response<Incoming> = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    pub fn clone_h2(&self) -> Option<Sender> {
        match self {
            Sender::H2(s) => Some(Sender::H2(s.clone())),
            Sender::H1(_) => None,
        }
    }
}

/// A request for `path` on `target` (HTTP/2 wants the full URI, HTTP/1.1 the path).
pub fn request(
    target: &Target,
    http2: bool,
    method: http::Method,
    path: &str,
    body: Option<Bytes>,
) -> Request<Full<Bytes>> {
    let uri = if http2 {
        format!("{}{path}", target.authority)
    } else {
        path.to_owned()
    };
    let mut b = Request::builder().method(method).uri(uri);
    if !http2 {
        let host = target.authority.split("://").nth(1).unwrap_or("localhost");
        b = b.header(http::header::HOST, host);
    }
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
