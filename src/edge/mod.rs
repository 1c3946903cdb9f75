//! L1–L4: everything between a voter's TCP connection and the ballot layer.
//!
//! In the order a connection meets them:
//! - [`listener`]  — accept loops; PROXY v2; the TLS handshake; hyper serving h1 and h2.
//! - [`accept`]    — L1: penalty box, deny/allow lists, per-source and per-prefix
//!   connection caps and rates, admission into the connection table.
//! - [`conns`]     — the connection table: phases, reclaim when full, timeouts by phase.
//! - [`overload`]  — pressure, and the timeouts that shrink with it.
//! - [`penalty`]   — sources that kept sending after 429s, refused at accept for a while.
//! - [`proxy`]     — PROXY protocol v2 from trusted balancers.
//! - [`h2control`] — L3: a budget for the HTTP/2 PINGs and SETTINGS a client makes us answer.
//! - [`tls`]       — L2's certificate: generation on first start, reload on SIGHUP.
//! - [`plaintext`] — plain HTTP sent to the TLS port: a short 400 that says to use https.
//! - [`router`]    — the HTTP front: routes and L4's checks before the body is read.
//! - [`cors`]      — CORS for the election's web clients on other origins.
//! - [`pages`]     — the voter's pages: status, receipt checker, demo voting client.
//! - [`admission`] — L4: keyed rate limits per source and prefix, load shedding, penalties.
//! - [`source`]    — source (/32, /64) and prefix (/24, /48) keys.
//! - [`backend`]   — the one trait everything behind the edge implements.
//! - [`reply`]     — answers and the stable error codes.
//! - [`metrics`], [`telemetry`] — Prometheus and log output.

pub mod accept;
pub mod admission;
pub mod backend;
pub mod conns;
pub mod cors;
pub mod h2control;
pub mod handshakes;
pub mod listener;
pub mod metrics;
pub mod overload;
pub mod pages;
pub mod penalty;
pub mod plaintext;
pub mod proxy;
pub mod reply;
pub mod router;
mod sockopt;
pub mod source;
pub mod synfilter;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use backend::Backend;
pub use reply::{Cache, Reply};

use crate::config::Config;
use listener::Edge;
use overload::Overload;
use router::Front;
use tls::{CertStore, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the TLS material is, and whether it was just generated.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

/// Makes sure a certificate exists: the configured pair, or a self-signed P-256 certificate
/// generated into `<storage.dir>/tls/` on first start. Checks that it loads.
pub fn prepare_tls(config: &Config) -> Result<TlsSetup, TlsError> {
    let (cert, key, generate) = config.tls_paths();
    let generated = generate && tls::ensure_self_signed(&cert, &key)?;
    tls::load_certified_key(&cert, &key, &tls::provider())?;
    Ok(TlsSetup {
        cert,
        key,
        generated,
    })
}

/// A bound, not yet running server.
pub struct Server<B> {
    edge: Arc<Edge<B>>,
    certs: Arc<CertStore>,
    tls_config: Arc<rustls::ServerConfig>,
    tls_listener: TcpListener,
    plain_listener: Option<TcpListener>,
    limiter_sweep: Duration,
    overload_tick: Duration,
}

/// The bound, listening sockets and nothing else. `urna serve` binds them before it
/// generates any state (certificate, demo electorate, log key, log): a second server
/// started on a port in use fails at once, without leaving a half-made election behind.
/// They listen from the start: a socket bound with `SO_REUSEADDR` but not listening does
/// not hold its port against a second one. A client that connects while a long recovery
/// runs waits in the kernel's backlog until the server accepts.
pub struct Listeners {
    tls: TcpListener,
    plain: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen` and `server.listen_plain`. Needs a tokio runtime.
    pub fn bind(config: &Config) -> Result<Listeners, ServeError> {
        let backlog = config.limits.listen_backlog.get();
        let defer = config.limits.defer_accept_ms;
        let bind = |addr: SocketAddr| {
            listener::bind(addr, backlog, defer).map_err(|source| ServeError::Bind { addr, source })
        };
        let tls = bind(config.server.listen)?;
        let plain = match config.server.listen_plain {
            Some(addr) => Some(bind(addr)?),
            None => None,
        };
        Ok(Listeners { tls, plain })
    }

    /// The TLS listener's address (its real port with `listen = "...:0"`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tls.local_addr()
    }

    /// The plain-HTTP listener's address, if configured.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }
}

impl<B: Backend> Server<B> {
    /// Binds the listeners, then prepares TLS (generating the certificate if needed).
    pub async fn bind(config: &Config, backend: Arc<B>) -> Result<Server<B>, ServeError> {
        let listeners = Listeners::bind(config)?;
        Server::on(config, listeners, backend)
    }

    /// A server on listeners already bound: prepares TLS (generating the certificate if
    /// needed) and the edge.
    pub fn on(
        config: &Config,
        listeners: Listeners,
        backend: Arc<B>,
    ) -> Result<Server<B>, ServeError> {
        let setup = prepare_tls(config)?;
        let certs = CertStore::load(&setup.cert, &setup.key)?;
        let tls_config = certs.server_config(config.limits.tls_session_tickets)?;
        let Listeners {
            tls: tls_listener,
            plain: plain_listener,
        } = listeners;
        let overload = Arc::new(Overload::new(&config.limits));
        let front = Front::new(
            backend,
            &config.limits,
            metrics::install(),
            config.server.metrics_allow.clone(),
            overload.clone(),
        )
        .with_web(
            cors::Cors::new(&config.server.cors_origins),
            config.server.pages,
        );
        Ok(Server {
            edge: Arc::new(Edge::new(&config.server, &config.limits, front, overload)),
            certs,
            tls_config,
            tls_listener,
            plain_listener,
            limiter_sweep: Duration::from_millis(config.limits.limiter_sweep_ms),
            overload_tick: Duration::from_millis(config.limits.overload_tick_ms),
        })
    }

    /// The TLS listener's address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tls_listener.local_addr()
    }

    /// The plain-HTTP listener's address, if configured.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The certificate store (reload it by hand, or read the leaf in use).
    pub fn certs(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// Serves until `shutdown` resolves; reloads the certificate on SIGHUP. Then: stops
    /// accepting, asks every connection to close gracefully, waits for in-flight requests
    /// up to `server.shutdown_grace_ms`, and calls [`Backend::shutdown`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(listener::accept_loop(
            self.edge.clone(),
            self.tls_listener,
            Some(self.tls_config),
            stop_rx.clone(),
            done_tx.clone(),
        ));
        if let Some(plain) = self.plain_listener {
            tasks.spawn(listener::accept_loop(
                self.edge.clone(),
                plain,
                None,
                stop_rx.clone(),
                done_tx.clone(),
            ));
        }
        drop(done_tx);
        let mut background = tokio::task::JoinSet::new();
        // Register for SIGHUP now, before serving: a SIGHUP that arrives before the handler
        // exists would kill the process (the signal's default action).
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                background.spawn(reload_on_sighup(self.certs.clone(), hup));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; certificate reload disabled")
            }
        }
        {
            let edge = self.edge.clone();
            let every = self.limiter_sweep;
            background.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    edge.front.admission.sweep();
                    edge.gate.penalty.sweep(std::time::Instant::now());
                    edge.front.metrics.run_upkeep();
                }
            });
        }
        {
            let edge = self.edge.clone();
            let every = self.overload_tick;
            background.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    edge.overload_tick();
                }
            });
        }

        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Every connection task holds a `done` sender: recv() is None once all are gone.
        let grace = self.edge.shutdown_grace;
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "connections still open after the grace period"
            );
        }
        background.abort_all();
        self.edge.front.backend.shutdown().await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Binds and runs: what `urna serve` calls once the backend exists.
pub async fn serve<B: Backend>(
    config: &Config,
    backend: Arc<B>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let server = Server::bind(config, backend).await?;
    let listen = server.local_addr().map_err(|source| ServeError::Bind {
        addr: config.server.listen,
        source,
    })?;
    // Plain values only: a JSON log line carries `"plain":"127.0.0.1:8680"`, never Rust's
    // `Some(..)`.
    match server.plain_addr() {
        Some(plain) => tracing::info!(listen = %listen, plain = %plain, "serving"),
        None => tracing::info!(listen = %listen, "serving"),
    }
    server.run(shutdown).await
}

/// Raises the process's open-file limit to its hard limit, as nginx's
/// `worker_rlimit_nofile`: every connection is a descriptor, and a soft limit of 1024 (a
/// common default) would turn accept into EMFILE long before `max_connections`. Returns the
/// limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Resolves on SIGTERM or SIGINT: pass it to [`serve`] as the shutdown future.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn reload_on_sighup(certs: Arc<CertStore>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        match certs.reload() {
            Ok(()) => tracing::info!("certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "certificate reload failed; keeping the old certificate")
            }
        }
    }
}
