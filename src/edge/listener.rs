//! L1–L3 for one connection: accept, PROXY v2, L1's admission into the connection table,
//! the first byte, the TLS handshake, then hyper serving HTTP/1.1 and HTTP/2 with L3's
//! bounds, until the connection ends, is asked to close (idle, quota, shutdown), or the
//! table ends it (reclaimed for a newcomer, a phase past its timeout, the penalty box).
//!
//! Nothing here waits before `accept()`: the accept loop only accepts. What a connection
//! may cost is decided after, by phase — a silent connection holds a table slot and nothing
//! else; a handshake slot is taken only once a whole ClientHello has arrived — so silent or
//! half-open sockets cannot keep new voters in the kernel's queue.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::accept::AcceptGate;
use super::backend::Backend;
use super::conns::{ConnState, Phase};
use super::h2control::ControlBudget;
use super::handshakes::Handshakes;
use super::metrics::reject;
use super::overload::{Overload, Timeout};
use super::proxy::{self, ProxyError};
use super::router::{self, Front};
use super::source::in_any;
use crate::config::{LimitsConfig, ServerConfig};

/// First byte of a PROXY v2 header (`\r`). TLS records start with 0x16 and HTTP requests
/// with a method's capital letter, so one peeked byte tells the three apart.
const PROXY_V2_FIRST_BYTE: u8 = b'\r';

/// What every connection of a server shares.
pub struct Edge<B> {
    pub front: Front<B>,
    pub gate: Arc<AcceptGate>,
    pub overload: Arc<Overload>,
    pub http: auto::Builder<TokioExecutor>,
    /// Handshakes doing crypto (ClientHello in). Taken after the hello, never before accept;
    /// handed out fairly between prefixes, wasters last ([`super::handshakes`]).
    pub handshakes: Arc<Handshakes>,
    pub shutdown_grace: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub proxy_required: bool,
    /// Most boxed sources each listening socket's kernel filter drops (0: off).
    pub kernel_box_sources: usize,
    /// Each HTTP/2 connection's budget of PINGs and SETTINGS: burst, per second.
    pub h2_control: (u32, u32),
}

impl<B: Backend> Edge<B> {
    pub fn new(
        server: &ServerConfig,
        limits: &LimitsConfig,
        front: Front<B>,
        overload: Arc<Overload>,
    ) -> Edge<B> {
        Edge {
            gate: front.gate.clone(),
            overload,
            http: http_builder(limits),
            handshakes: Handshakes::new(
                limits.max_handshakes_in_flight.get(),
                limits.max_handshakes_in_flight.get()
                    * usize::from(limits.waster_handshake_share_pct)
                    / 100,
                limits.max_handshakes_waiting.get(),
            ),
            shutdown_grace: Duration::from_millis(server.shutdown_grace_ms),
            trusted_proxies: server.trusted_proxies.clone(),
            proxy_required: server.proxy_protocol_required,
            kernel_box_sources: limits.penalty_box_kernel_sources,
            h2_control: (
                limits.h2_control_frames_burst,
                limits.h2_control_frames_per_s,
            ),
            front,
        }
    }

    /// One overload tick: re-measures pressure, then ends every connection past the scaled
    /// timeout of its phase (an idle one is asked to close gracefully).
    pub fn overload_tick(&self) {
        let table = &self.gate.table;
        let handshakes = &self.handshakes;
        let pressure = self.overload.update(
            (table.open(), table.capacity()),
            (handshakes.in_flight(), handshakes.capacity()),
        );
        metrics::gauge!("urna_handshakes_waiting").set(handshakes.waiting() as f64);
        self.overload.publish(pressure);
        metrics::gauge!("urna_connections_open").set(table.open() as f64);
        let overload = &self.overload;
        let overdue = table.overdue(|phase| {
            let ms = overload.timeout_ms(Timeout::of(phase)?);
            // The front answers a slow body with a 408 at its own (equal) deadline; this is
            // the backstop, a tick later.
            Some(if phase == Phase::Body { ms + 1_000 } else { ms })
        });
        for (conn, phase) in overdue {
            let (layer, reason) = match phase {
                Phase::Idle => {
                    if conn.ask_to_close() {
                        reject("l3", "keep_alive_idle");
                        self.gate.wasted(conn.client);
                    }
                    continue;
                }
                Phase::Silent => ("l1", "first_byte_timeout"),
                Phase::Hello | Phase::Handshake => ("l2", "handshake_timeout"),
                Phase::Headers => ("l3", "header_timeout"),
                Phase::Body => ("l4", "body_timeout"),
                Phase::Busy => continue,
            };
            reject(layer, reason);
            if phase.wasted() {
                self.gate.wasted(conn.client);
            }
            conn.end(super::conns::Ended::TimedOut);
        }
    }
}

/// hyper's builder with every L3 bound from the config. The keep-alive idle and header
/// timeouts are the overload manager's (per phase, scaled under pressure); hyper's own
/// header timer, which runs from the end of one answer to the end of the next head, is set
/// to the sum of both full timeouts as a backstop.
pub fn http_builder(l: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            l.header_read_timeout_ms + l.keep_alive_idle_ms,
        ))
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
        // Pings find dead peers; the overload manager closes live but idle ones.
        .keep_alive_interval(Duration::from_millis(l.keep_alive_idle_ms))
        .keep_alive_timeout(Duration::from_millis(l.handshake_timeout_ms));
    b
}

/// Binds a listener with the configured accept backlog and, where the system has it, the
/// kernel's deferred accept (`defer_accept_ms`; 0: off).
pub fn bind(addr: SocketAddr, backlog: u32, defer_accept_ms: u64) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if defer_accept_ms > 0 {
        let secs = u32::try_from(defer_accept_ms.div_ceil(1000)).unwrap_or(u32::MAX);
        if let Err(e) = super::sockopt::set_defer_accept(&socket, secs) {
            tracing::warn!(error = %e, "TCP_DEFER_ACCEPT not available; silent sockets reach accept()");
        }
    }
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Accepts until `shutdown` turns true. Waits on nothing but `accept()` itself.
pub async fn accept_loop<B: Backend>(
    edge: Arc<Edge<B>>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut kernel_box = KernelBox::new(edge.kernel_box_sources);
    let mut refresh = tokio::time::interval(KernelBox::REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
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
            _ = refresh.tick(), if kernel_box.enabled() => {
                kernel_box.refresh(&edge, &listener, Instant::now());
                continue;
            }
            _ = shutdown.changed() => break,
        };
        // A boxed or denied peer is reset here, before a task is spawned for it: once the
        // penalty box holds a source, each of its attempts costs an accept and a reset
        // (and, for the sources the kernel filter holds, not even that).
        // (Behind a trusted balancer the client is known only after the PROXY header.)
        if !in_any(&edge.trusted_proxies, peer.ip()) {
            if let Some(r) = edge.gate.refuse_at_once(peer.ip(), Instant::now()) {
                reject("l1", r.reason());
                refuse(tcp);
                continue;
            }
        }
        kernel_box.release(&tcp);
        tokio::spawn(connection(
            edge.clone(),
            tcp,
            peer,
            tls.clone(),
            shutdown.clone(),
            done.clone(),
        ));
    }
}

/// One listening socket's copy of the penalty box in the kernel ([`super::synfilter`]):
/// rewritten when a source enters the box or one of those it holds leaves it, checked every
/// [`KernelBox::REFRESH`], so a boxed source is dropped in the kernel within that time (and
/// refused at accept meanwhile).
struct KernelBox {
    max: usize,
    /// The penalty box's generation the filter follows, and when its first source leaves.
    generation: u64,
    first_out: Option<Instant>,
    /// Sources in the filter now (0: none installed).
    installed: usize,
    /// After the filter comes off, connections cloned from the listener while it was on
    /// may still wait in the accept queue, carrying it: they are released until then.
    release_until: Option<Instant>,
}

impl KernelBox {
    const REFRESH: Duration = Duration::from_millis(200);

    fn new(max: usize) -> KernelBox {
        KernelBox {
            max,
            generation: 0,
            first_out: None,
            installed: 0,
            release_until: None,
        }
    }

    fn enabled(&self) -> bool {
        self.max > 0
    }

    fn refresh<B: Backend>(&mut self, edge: &Edge<B>, listener: &TcpListener, now: Instant) {
        let penalty = &edge.gate.penalty;
        let generation = penalty.generation();
        if generation == self.generation && self.first_out.is_none_or(|t| now < t) {
            return;
        }
        let (mut sources, first_out) = penalty.boxed(now, self.max);
        // A trusted balancer's own address is never dropped: its clients are judged after
        // their PROXY header, one by one.
        sources.retain(|s| !in_any(&edge.trusted_proxies, s.network()));
        self.generation = generation;
        self.first_out = first_out;
        if sources.is_empty() && self.installed == 0 {
            return;
        }
        match super::synfilter::install(&socket2::SockRef::from(listener), &sources) {
            Ok(()) => {
                if sources.is_empty() {
                    self.release_until = Some(now + Duration::from_secs(5));
                }
                self.installed = sources.len();
                metrics::gauge!("urna_penalty_box_kernel_sources").set(sources.len() as f64);
                metrics::counter!("urna_penalty_box_kernel_updates_total").increment(1);
            }
            Err(e) => {
                // Not on this system (or refused): the box keeps working at accept.
                tracing::warn!(error = %e, "cannot filter boxed sources in the kernel; refusing them at accept");
                self.max = 0;
            }
        }
    }

    /// An accepted connection inherits its listener's filter: take it off, so established
    /// connections never run the list.
    fn release(&self, tcp: &TcpStream) {
        if self.installed > 0 || self.release_until.is_some_and(|t| Instant::now() < t) {
            let _ = super::synfilter::uninstall(&socket2::SockRef::from(tcp));
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("PROXY header: {0}")]
    Proxy(#[from] ProxyError),
    #[error("PROXY header from an untrusted peer")]
    UntrustedProxy,
    #[error("PROXY header timed out")]
    ProxyTimeout,
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("hello shed: too many waiting for a handshake slot")]
    Shed,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl SetupError {
    fn count(&self) {
        match self {
            SetupError::Proxy(ProxyError::Missing) => reject("l1", "proxy_header_missing"),
            SetupError::Proxy(_) => reject("l1", "proxy_header_bad"),
            SetupError::UntrustedProxy => reject("l1", "proxy_header_untrusted"),
            SetupError::ProxyTimeout => reject("l1", "proxy_header_timeout"),
            SetupError::Tls(_) => reject("l2", "handshake_error"),
            // Counted where it is shed (`urna_rejections_total{reason="handshake_queue_full"}`).
            SetupError::Shed => {}
            SetupError::Io(_) => reject("l2", "io_error"),
        }
    }
}

/// Who the client is: the peer, or the address a trusted balancer's PROXY v2 header names
/// (read within the handshake timeout, before L1: only then is the client known).
async fn identify<B: Backend>(
    edge: &Edge<B>,
    tcp: &mut TcpStream,
    peer: SocketAddr,
) -> Result<IpAddr, SetupError> {
    if !in_any(&edge.trusted_proxies, peer.ip()) {
        return Ok(peer.ip());
    }
    let read = async {
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await?;
        if n == 1 && first[0] == PROXY_V2_FIRST_BYTE {
            Ok(proxy::read_v2(tcp).await?.unwrap_or(peer.ip()))
        } else if edge.proxy_required {
            Err(ProxyError::Missing.into())
        } else {
            Ok(peer.ip())
        }
    };
    tokio::time::timeout(edge.overload.timeout(Timeout::Handshake), read)
        .await
        .map_err(|_| SetupError::ProxyTimeout)?
}

/// Whether bytes are waiting on the socket now (a non-blocking peek: tokio's sockets are
/// non-blocking, so this never waits).
fn has_data(tcp: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(socket2::SockRef::from(tcp).peek(&mut byte), Ok(n) if n > 0)
}

/// Closes a refused connection with a reset rather than a FIN: the server keeps no
/// TIME_WAIT state for a source it has just refused (HAProxy's `silent-drop` spirit).
fn refuse(tcp: TcpStream) {
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    drop(tcp);
}

async fn connection<B: Backend>(
    edge: Arc<Edge<B>>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let client = match Box::pin(identify(&edge, &mut tcp, peer)).await {
        Ok(client) => client,
        Err(e) => {
            e.count();
            tracing::debug!(%peer, error = %e, "connection refused");
            return;
        }
    };
    let ticket = match edge.gate.admit(client) {
        Ok(t) => t,
        Err(r) => {
            reject("l1", r.reason());
            refuse(tcp);
            return;
        }
    };
    let conn = ticket.conn.state().clone();
    if has_data(&tcp) {
        // The first bytes were in before we looked: by the time a voter's connection is
        // accepted, its ClientHello usually is too. Such a connection never ranks as silent
        // (reclaimed early, first-byte timeout) while its task waits for a turn on a
        // busy server.
        conn.set_phase(Phase::Hello);
    }
    let trusted_peer = in_any(&edge.trusted_proxies, peer.ip());
    // The table may end the connection in any phase (reclaimed for a newcomer, past its
    // phase's timeout, penalty box): then it is dropped where it stands.
    tokio::select! {
        biased;
        _ = conn.ended() => {}
        _ = setup_and_serve(&edge, tcp, &conn, trusted_peer, tls, shutdown) => {}
    }
    drop(ticket);
}

async fn setup_and_serve<B: Backend>(
    edge: &Arc<Edge<B>>,
    tcp: TcpStream,
    conn: &Arc<ConnState>,
    trusted_peer: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: watch::Receiver<bool>,
) {
    // Each phase below is boxed (PROXY header, handshake, plain-HTTP answer, HTTP): a task
    // is allocated at the size of its future's largest state and keeps it for its whole
    // life, so unboxed every connection, even an idle one, carried the handshake's state
    // beside hyper's (8.8 KB a task; 1.7 KB boxed). Boxed, it holds each phase's state only
    // while in that phase, for one allocation per phase.
    // Silent until the first byte: the connection holds its table slot and nothing else.
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) => {}
        _ => return,
    }
    let _ = tcp.set_nodelay(true);
    if !trusted_peer && first[0] == PROXY_V2_FIRST_BYTE {
        // Only a trusted balancer may say who the client is: anyone else is forging.
        SetupError::UntrustedProxy.count();
        return;
    }
    let Some(config) = tls else {
        conn.set_phase(Phase::Headers);
        return Box::pin(serve_http(edge, tcp, conn, true, shutdown)).await;
    };
    if conn.phase() == Some(Phase::Silent) {
        conn.set_phase(Phase::Hello);
    }
    if super::plaintext::is_plain_http(first[0]) {
        // http:// typed for this port: a 400 a browser can show, not a failed handshake.
        reject("l2", "plain_http");
        return Box::pin(super::plaintext::answer_plain_http(tcp)).await;
    }
    let started = Instant::now();
    let stream = match Box::pin(handshake(edge, tcp, conn, config)).await {
        Ok(s) => s,
        Err(e) => {
            e.count();
            tracing::debug!(client = %conn.client, error = %e, "handshake failed");
            return;
        }
    };
    metrics::histogram!("urna_handshake_duration_seconds").record(started.elapsed().as_secs_f64());
    conn.set_phase(Phase::Idle);
    // HTTP/2 clients talk while idle (pings, settings): only HTTP/1.1 bytes between
    // requests mean a request head is arriving.
    let h1 = stream.get_ref().1.alpn_protocol() != Some(b"h2");
    Box::pin(serve_http(edge, stream, conn, h1, shutdown)).await
}

/// Reads the whole ClientHello without any crypto, then takes a handshake slot for the
/// rest: a client that never finishes its hello never holds one. The wait for a slot counts
/// against the handshake timeout (the overload manager's tick enforces it). Slots go to the
/// prefix with the fewest hellos waiting, wasters last; a hello may be shed
/// ([`super::handshakes`]).
async fn handshake<B: Backend>(
    edge: &Edge<B>,
    tcp: TcpStream,
    conn: &ConnState,
    config: Arc<rustls::ServerConfig>,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, SetupError> {
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
        .await
        .map_err(SetupError::Tls)?;
    conn.set_phase(Phase::Handshake);
    let waster = edge.gate.is_waster(conn.client);
    metrics::counter!("urna_handshakes_total", "source" => if waster { "waster" } else { "other" })
        .increment(1);
    let Some(_slot) = edge.handshakes.acquire(conn.client, waster).await else {
        return Err(SetupError::Shed);
    };
    let _gauge = HandshakeGauge::up();
    start.into_stream(config).await.map_err(SetupError::Tls)
}

/// `urna_handshakes_in_flight`, raised for one handshake and lowered when it ends, however
/// it ends: a handshake whose connection the table ends (reclaimed, timed out) is dropped
/// mid-await, and a decrement after the await would never run.
struct HandshakeGauge;

impl HandshakeGauge {
    fn up() -> HandshakeGauge {
        metrics::gauge!("urna_handshakes_in_flight").increment(1.0);
        HandshakeGauge
    }
}

impl Drop for HandshakeGauge {
    fn drop(&mut self) {
        metrics::gauge!("urna_handshakes_in_flight").decrement(1.0);
    }
}

/// Serves HTTP on one connection until it ends. Closes it gracefully when asked (idle past
/// the keep-alive timeout, its quota of requests served, or shutdown); a graceful close that
/// takes longer than `shutdown_grace_ms` is cut.
async fn serve_http<B: Backend, I>(
    edge: &Arc<Edge<B>>,
    io: I,
    conn_state: &Arc<ConnState>,
    h1: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = conn_state.client;
    let service = {
        let edge = edge.clone();
        let conn_state = conn_state.clone();
        service_fn(move |req| {
            let edge = edge.clone();
            let conn_state = conn_state.clone();
            async move { router::handle(&edge.front, &conn_state, req).await }
        })
    };
    let (burst, per_s) = edge.h2_control;
    let io = Watched {
        io,
        conn: conn_state.clone(),
        h1,
        control: ControlBudget::new(burst, per_s),
    };
    let conn = edge.http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    let hard_stop = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(hard_stop);
    loop {
        let why = tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    count_http_error(&*e);
                    tracing::debug!(%client, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = conn_state.close.notified(), if !closing => "asked",
            _ = shutdown.changed(), if !closing => "shutdown",
            _ = &mut hard_stop => {
                reject("l3", "close_grace_exceeded");
                break;
            }
        };
        tracing::trace!(%client, why, "closing connection");
        closing = true;
        conn.as_mut().graceful_shutdown();
        hard_stop
            .as_mut()
            .reset((Instant::now() + edge.shutdown_grace).into());
    }
}

/// The connection's byte stream as hyper reads it: bytes arriving on an idle HTTP/1.1
/// connection start the header phase (and its timeout) of the next request, and an HTTP/2
/// client's PINGs and SETTINGS are held to their budget ([`super::h2control`]).
struct Watched<I> {
    io: I,
    conn: Arc<ConnState>,
    h1: bool,
    control: ControlBudget,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            if self.h1 && self.conn.phase() == Some(Phase::Idle) {
                self.conn.set_phase(Phase::Headers);
            }
            if !self.control.feed(&buf.filled()[before..]) {
                // Ended through the table, as a reclaim or a timeout is: the connection's
                // task drops it at once, and hyper, never woken again, counts no error of
                // its own (h2 keeps only an io error's kind, so a read error here was
                // counted twice, once more as `protocol_error`).
                reject("l3", "h2_control_flood");
                self.conn.end(super::conns::Ended::Flooded);
                return Poll::Pending;
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
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
