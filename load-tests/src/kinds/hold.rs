//! The driver the connection-holding kinds share (`idle-tcp`, `tls-stall`, `idle-keepalive`,
//! `slowloris`, `slow-body`, `slow-read`, `handshake-stall`, `tls-churn`,
//! `handshake-flood`): where each new connection comes from and when it is opened.
//!
//! Two shapes. Held: `connections` slots, each opening a connection, doing its kind's thing
//! until the server closes it (or the run ends), then opening the next from the next address
//! of the pool (at most one every [`MIN_SLOT_CYCLE`] per slot) — so `connections` are held
//! at once, from as many addresses as the pool has. Open loop: a new connection every `1 / rate_per_s` seconds, at most `connections` alive at
//! once (an arrival that finds them all busy is counted in `skipped_at_cap`, not queued: the
//! rate stays the rate).
//!
//! Every connection's outcome is recorded into one `Stats` per task behind a mutex: a
//! histogram is ~190 KB, and one per connection would cost gigabytes at 15,000 connections.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

use super::{Pool, Window, RECONNECT_PAUSE};
use crate::report::Stats;

/// Shortest time from one connection of a slot to its next: at most 10 a second per slot,
/// so the connections a slot opens are bounded in count as well as in time.
pub const MIN_SLOT_CYCLE: Duration = Duration::from_millis(100);

/// A task's stats, shared by its connections.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Stats>>);

impl Shared {
    /// The stats, to record into. A panic while recording (a bug) poisons the lock; the
    /// counts are still whole numbers, so they are used as they are.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stats, once every connection is done.
    pub fn take(self) -> Stats {
        let mut guard = self.lock();
        std::mem::take(&mut *guard)
    }
}

/// What a connection's end asks of its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Open the next connection at once.
    Again,
    /// The connection could not be opened: pause [`RECONNECT_PAUSE`] first, so a refusing
    /// server is not spun against.
    Pause,
}

/// Where and how fast connections come.
#[derive(Debug, Clone, Copy)]
pub struct Driver {
    /// Held at once (held shape), or the cap on those alive at once (open loop).
    pub connections: usize,
    /// New connections per second (open loop); absent: the held shape.
    pub rate_per_s: Option<f64>,
    /// Held shape: the pause between a connection's end and the slot's next connection.
    pub reconnect: Duration,
    pub pool: Pool,
}

impl Driver {
    /// Runs `one(address, deadline)` for every connection from `window.start` to
    /// `window.deadline`; `one` records into `stats` and must itself end by the deadline
    /// (plus whatever grace its kind allows).
    pub async fn drive<F, Fut>(self, window: Window, stats: Shared, one: F) -> Stats
    where
        F: Fn(IpAddr, Instant) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Next> + Send + 'static,
    {
        sleep_until(window.start.into()).await;
        let deadline = window.deadline;
        let one = Arc::new(one);
        let mut set = JoinSet::new();
        match self.rate_per_s {
            None => {
                for slot in 0..self.connections {
                    let (one, pool, slots) = (one.clone(), self.pool, self.connections);
                    let reconnect = self.reconnect;
                    set.spawn(async move {
                        let mut round = 0usize;
                        while Instant::now() < deadline {
                            let began = Instant::now();
                            let ip = pool.cycled(slot, slots, round);
                            round += 1;
                            if one(ip, deadline).await == Next::Pause {
                                sleep(RECONNECT_PAUSE).await;
                            }
                            sleep(reconnect).await;
                            // A server at its connection cap closes at accept: without a
                            // floor, every surplus slot would spin on connect.
                            sleep_until((began + MIN_SLOT_CYCLE).into()).await;
                        }
                    });
                }
            }
            Some(rate) => {
                let every = Duration::from_secs_f64(1.0 / rate);
                let cap = Arc::new(Semaphore::new(self.connections));
                // Bounded by the window: the n-th connection is due at start + n / rate.
                for n in 0usize.. {
                    let at = window.start + every.mul_f64(n as f64);
                    if at >= deadline {
                        break;
                    }
                    sleep_until(at.into()).await;
                    // Reap finished connections so the set holds only live ones.
                    while set.try_join_next().is_some() {}
                    let Ok(permit) = cap.clone().try_acquire_owned() else {
                        stats.lock().skipped_at_cap += 1;
                        continue;
                    };
                    let (one, ip) = (one.clone(), self.pool.addr(n));
                    set.spawn(async move {
                        one(ip, deadline).await;
                        drop(permit);
                    });
                }
            }
        }
        while set.join_next().await.is_some() {}
        stats.take()
    }
}

/// Opens a TCP connection from `ip` by `deadline`, counting it (`connects`) or why it
/// failed (`failures.connect` / `failures.timeout`).
pub async fn open_tcp(
    target: &crate::net::Target,
    ip: IpAddr,
    deadline: Instant,
    stats: &Shared,
) -> Option<tokio::net::TcpStream> {
    match tokio::time::timeout_at(deadline.into(), crate::net::tcp(target, ip)).await {
        Ok(Ok(s)) => {
            stats.lock().connects += 1;
            Some(s)
        }
        Ok(Err(_)) => {
            stats.lock().fail("connect");
            None
        }
        // The run ended while connecting: nothing the server did.
        Err(_) => None,
    }
}

/// Completes a TLS handshake over `tcp` by `deadline`, recording its time from `began`
/// (TCP connect included) or the failure (`failures.tls`).
pub async fn open_tls(
    target: &crate::net::Target,
    tcp: tokio::net::TcpStream,
    began: Instant,
    deadline: Instant,
    stats: &Shared,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    open_tls_alpn(target, tcp, began, deadline, stats, false).await
}

/// As [`open_tls`], offering `h2` by ALPN when `http2` (else `http/1.1`).
pub async fn open_tls_alpn(
    target: &crate::net::Target,
    tcp: tokio::net::TcpStream,
    began: Instant,
    deadline: Instant,
    stats: &Shared,
    http2: bool,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = target.tls(http2)?;
    let hs = tokio_rustls::TlsConnector::from(tls).connect(target.server_name.clone(), tcp);
    match tokio::time::timeout_at(deadline.into(), hs).await {
        Ok(Ok(s)) => {
            stats.lock().handshake(super::us_since(began));
            Some(s)
        }
        Ok(Err(_)) => {
            stats.lock().fail("tls");
            None
        }
        Err(_) => None,
    }
}

/// Reads (and throws away) until the server closes the connection — true — or `deadline`
/// passes — false. What was read is added to `bytes`; a reset counts as a close.
pub async fn until_closed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    deadline: Instant,
    bytes: &mut u64,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => *bytes += n as u64,
            Err(_) => return false,
        }
    }
}

/// Records that the server closed a connection `since` after it began (or went idle).
pub fn closed_by_server(stats: &Shared, since: Instant) {
    let mut st = stats.lock();
    st.closed_by_server += 1;
    st.close_after_us.saturating_record(super::us_since(since));
}
