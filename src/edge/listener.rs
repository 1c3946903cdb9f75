//! L1–L3 for one connection: accept, PROXY v2, the TLS handshake, then hyper serving
//! HTTP/1.1 and HTTP/2 with L3's bounds, until the connection ends, idles out, has served
//! its quota of requests, or the server shuts down.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::accept::{AcceptGate, ConnTicket};
use super::backend::Backend;
use super::metrics::reject;
use super::proxy::{self, ProxyError};
use super::router::{self, ConnState, Front};
use super::source::in_any;
use crate::config::{LimitsConfig, ServerConfig};

/// First byte of a PROXY v2 header (`\r`). TLS records start with 0x16 and HTTP requests
/// with a method's capital letter, so one peeked byte tells the three apart.
const PROXY_V2_FIRST_BYTE: u8 = b'\r';

/// What every connection of a server shares.
pub struct Edge<B> {
    pub front: Front<B>,
    pub gate: Arc<AcceptGate>,
    pub http: auto::Builder<TokioExecutor>,
    pub handshakes: Arc<Semaphore>,
    pub handshake_timeout: Duration,
    pub keep_alive_idle: Duration,
    pub shutdown_grace: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub proxy_required: bool,
}

impl<B: Backend> Edge<B> {
    pub fn new(server: &ServerConfig, limits: &LimitsConfig, front: Front<B>) -> Edge<B> {
        Edge {
            front,
            gate: AcceptGate::new(limits),
            http: http_builder(limits),
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes_in_flight.get())),
            handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
            keep_alive_idle: Duration::from_millis(limits.keep_alive_idle_ms),
            shutdown_grace: Duration::from_millis(server.shutdown_grace_ms),
            trusted_proxies: server.trusted_proxies.clone(),
            proxy_required: server.proxy_protocol_required,
        }
    }
}

/// hyper's builder with every L3 bound from the config.
pub fn http_builder(l: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(l.header_read_timeout_ms))
        .max_buf_size(l.max_header_bytes as usize)
        .max_headers(l.max_headers.get())
        .keep_alive(true)
        .half_close(false);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(l.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(l.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(l.h2_max_local_error_reset_streams)
        .max_header_list_size(l.max_header_bytes)
        .initial_stream_window_size(l.h2_initial_stream_window_bytes)
        .initial_connection_window_size(l.h2_initial_connection_window_bytes)
        .max_frame_size(l.h2_max_frame_bytes)
        .max_send_buf_size(l.h2_initial_stream_window_bytes as usize)
        // Pings find dead peers; the idle timer below closes live but idle ones.
        .keep_alive_interval(Duration::from_millis(l.keep_alive_idle_ms))
        .keep_alive_timeout(Duration::from_millis(l.handshake_timeout_ms));
    b
}

/// Accepts until `shutdown` turns true. L2's cap is taken *before* accepting: past
/// `max_handshakes_in_flight`, new connections wait in the kernel's queue.
pub async fn accept_loop<B: Backend>(
    edge: Arc<Edge<B>>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let permit = tokio::select! {
            p = edge.handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // closed: never happens, the semaphore lives in `edge`
            },
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        tokio::spawn(connection(
            edge.clone(),
            tcp,
            peer,
            tls.clone(),
            permit,
            shutdown.clone(),
            done.clone(),
        ));
    }
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("L1 refused: {0}")]
    L1(#[from] super::accept::Refusal),
    #[error("PROXY header: {0}")]
    Proxy(#[from] ProxyError),
    #[error("PROXY header from an untrusted peer")]
    UntrustedProxy,
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl SetupError {
    fn count(&self) {
        match self {
            SetupError::L1(r) => reject("l1", r.reason()),
            SetupError::Proxy(ProxyError::Missing) => reject("l1", "proxy_header_missing"),
            SetupError::Proxy(_) => reject("l1", "proxy_header_bad"),
            SetupError::UntrustedProxy => reject("l1", "proxy_header_untrusted"),
            SetupError::Tls(_) => reject("l2", "handshake_error"),
            SetupError::Io(_) => reject("l2", "io_error"),
        }
    }
}

/// Who the client is (PROXY v2 from a trusted peer) and L1's ticket.
async fn identify<B: Backend>(
    edge: &Edge<B>,
    tcp: &mut TcpStream,
    peer: SocketAddr,
) -> Result<(IpAddr, ConnTicket), SetupError> {
    if in_any(&edge.trusted_proxies, peer.ip()) {
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await?;
        let client = if n == 1 && first[0] == PROXY_V2_FIRST_BYTE {
            proxy::read_v2(tcp).await?.unwrap_or(peer.ip())
        } else if edge.proxy_required {
            return Err(ProxyError::Missing.into());
        } else {
            peer.ip()
        };
        let ticket = edge.gate.admit(client)?;
        Ok((client, ticket))
    } else {
        // L1 first: a denied or capped peer is closed before we wait for a single byte.
        let ticket = edge.gate.admit(peer.ip())?;
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await?;
        if n == 1 && first[0] == PROXY_V2_FIRST_BYTE {
            // Only a trusted balancer may say who the client is: anyone else is forging.
            return Err(SetupError::UntrustedProxy);
        }
        Ok((peer.ip(), ticket))
    }
}

async fn connection<B: Backend>(
    edge: Arc<Edge<B>>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    handshake_slot: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let _ = tcp.set_nodelay(true);
    metrics::gauge!("urna_handshakes_in_flight").increment(1.0);
    let started = Instant::now();
    let setup = tokio::time::timeout(edge.handshake_timeout, async {
        let (client, ticket) = identify(&edge, &mut tcp, peer).await?;
        match tls {
            Some(acceptor) => {
                let stream = acceptor.accept(tcp).await.map_err(SetupError::Tls)?;
                Ok::<_, SetupError>((Io::Tls(Box::new(stream)), client, ticket))
            }
            None => Ok((Io::Plain(tcp), client, ticket)),
        }
    })
    .await;
    metrics::gauge!("urna_handshakes_in_flight").decrement(1.0);
    drop(handshake_slot);
    let (io, client, ticket) = match setup {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            e.count();
            tracing::debug!(%peer, error = %e, "connection refused");
            return;
        }
        Err(_) => {
            reject("l2", "handshake_timeout");
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    metrics::histogram!("urna_handshake_duration_seconds").record(started.elapsed().as_secs_f64());
    match io {
        Io::Tls(s) => serve_http(&edge, *s, client, shutdown).await,
        Io::Plain(s) => serve_http(&edge, s, client, shutdown).await,
    }
    drop(ticket);
}

enum Io {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

/// Serves HTTP on one connection until it ends. Closes it gracefully when it has been idle
/// for `keep_alive_idle_ms`, when it has served `max_requests_per_connection`, or on
/// shutdown; a graceful close that takes longer than `shutdown_grace_ms` is cut.
async fn serve_http<B: Backend, I>(
    edge: &Arc<Edge<B>>,
    io: I,
    client: IpAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_state = Arc::new(ConnState::new(client));
    let service = {
        let edge = edge.clone();
        let conn_state = conn_state.clone();
        service_fn(move |req| {
            let edge = edge.clone();
            let conn_state = conn_state.clone();
            async move { router::handle(&edge.front, &conn_state, req).await }
        })
    };
    let conn = edge.http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = edge.keep_alive_idle;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let mut closing = false;
    let mut close_reason: Option<&'static str> = None;
    let hard_stop = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(hard_stop);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    count_http_error(&*e);
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = conn_state.close.notified(), if !closing => {
                close_reason = Some("max_requests");
            }
            _ = shutdown.changed(), if !closing => {
                close_reason = Some("shutdown");
            }
            _ = &mut idle_timer, if !closing => {
                match conn_state.idle_since() {
                    Some(since) if since.elapsed() >= idle => {
                        reject("l3", "keep_alive_idle");
                        close_reason = Some("idle");
                    }
                    Some(since) => idle_timer.as_mut().reset((since + idle).into()),
                    None => idle_timer.as_mut().reset((Instant::now() + idle).into()),
                }
            }
            _ = &mut hard_stop => {
                reject("l3", "close_grace_exceeded");
                break;
            }
        }
        if let Some(why) = close_reason.take() {
            tracing::trace!(%client, why, "closing connection");
            closing = true;
            conn.as_mut().graceful_shutdown();
            hard_stop
                .as_mut()
                .reset((Instant::now() + edge.shutdown_grace).into());
        }
    }
}

fn count_http_error(e: &(dyn std::error::Error + 'static)) {
    let reason = match e.downcast_ref::<hyper::Error>() {
        Some(h) if h.is_timeout() => "header_timeout",
        Some(h) if h.is_parse_too_large() => "header_too_large",
        Some(h) if h.is_parse() => "malformed_request",
        Some(h) if h.is_incomplete_message() => "incomplete_message",
        _ => "protocol_error",
    };
    reject("l3", reason);
}
