//! `slowloris`: connections that send a request head one byte at a time and never finish
//! it. Each slot comes back when the server cuts it, from the next address of `sources`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep, timeout_at};

use super::hold::{closed_by_server, open_tcp, Driver, Next, Shared};
use super::{
    check_connections, check_interval, check_pool, check_rate, BoxFuture, Kind, Plan, PlanContext,
    Pool, Window,
};
use crate::net::Target;
use crate::report::Stats;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slowloris {
    pub name: String,
    /// Held at once (or, with `rate_per_s`, the most alive at once).
    pub connections: usize,
    /// Source pool; each new connection takes the next address.
    pub sources: IpNet,
    /// Pause between bytes, in ms.
    pub interval_ms: u64,
    /// New connections per second instead of holding `connections` (open loop).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

impl Kind for Slowloris {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)?;
        check_rate(&self.name, self.rate_per_s)?;
        check_interval(&self.name, self.interval_ms)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let head = format!("POST /v1/ballots HTTP/1.1\r\nHost: {}\r\nX-Slow: ", cx.host);
        Ok(Box::new(DripPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            drip: Arc::new(Drip {
                first: head.into_bytes(),
                chunk: b"a".to_vec(),
                chunks: None,
                interval: Duration::from_millis(self.interval_ms),
            }),
        }))
    }
}

/// What a dripping connection writes: `first` at once, then `chunk` every `interval`,
/// `chunks` times (forever when `None`, i.e. until the server or the deadline ends it).
pub struct Drip {
    pub first: Vec<u8>,
    pub chunk: Vec<u8>,
    pub chunks: Option<usize>,
    pub interval: Duration,
}

/// A planned slowloris or slow-body task.
pub struct DripPlan {
    pub driver: Driver,
    pub drip: Arc<Drip>,
}

impl Plan for DripPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let (drip, st) = (self.drip, stats.clone());
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            drip_once(target.clone(), ip, drip.clone(), deadline, st.clone())
        }))
    }
}

/// One dripping connection, TLS if the target is: records the answer's status (a 408) and
/// when the server gave up on us.
async fn drip_once(
    target: Arc<Target>,
    ip: IpAddr,
    drip: Arc<Drip>,
    deadline: Instant,
    stats: Shared,
) -> Next {
    let opened = Instant::now();
    let Some(tcp) = open_tcp(&target, ip, deadline, &stats).await else {
        return Next::Pause;
    };
    let end = if target.is_tls() {
        match super::hold::open_tls(&target, tcp, opened, deadline, &stats).await {
            Some(tls) => drip_on(tls, &drip, deadline).await,
            // A handshake the server refused or cut is a close too (as before pools).
            None => DripEnd::Closed(None),
        }
    } else {
        drip_on(tcp, &drip, deadline).await
    };
    if let DripEnd::Closed(status) = end {
        if let Some(status) = status {
            stats.lock().status(status);
        }
        closed_by_server(&stats, opened);
    }
    Next::Again
}

/// How a drip ended.
enum DripEnd {
    /// The server answered (status, when the answer's first line was readable) or closed.
    Closed(Option<u16>),
    /// The run ended first.
    Deadline,
}

/// Writes `drip` on `s`; ends when the server answers or closes, or at `deadline`.
async fn drip_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    drip: &Drip,
    deadline: Instant,
) -> DripEnd {
    if s.write_all(&drip.first).await.is_err() || s.flush().await.is_err() {
        return DripEnd::Closed(None);
    }
    let mut buf = [0u8; 512];
    let mut sent = 0usize;
    loop {
        let more = drip.chunks.is_none_or(|n| sent < n);
        tokio::select! {
            r = timeout_at(deadline.into(), s.read(&mut buf)) => match r {
                // Any answer (a 408) or a close means the server is done with us.
                Ok(Ok(n)) => return DripEnd::Closed(status_of(&buf[..n])),
                Ok(Err(_)) => return DripEnd::Closed(None),
                Err(_) => return DripEnd::Deadline,
            },
            _ = sleep(drip.interval), if more => {
                if Instant::now() >= deadline {
                    return DripEnd::Deadline;
                }
                if s.write_all(&drip.chunk).await.is_err() || s.flush().await.is_err() {
                    return DripEnd::Closed(None);
                }
                sent += 1;
            }
        }
    }
}

/// The status of an answer's first line (`HTTP/1.1 408 ...`), if `bytes` start with one.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.strip_prefix(b"HTTP/1.")?;
    std::str::from_utf8(line.get(2..5)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answers_status_is_read_from_its_first_bytes() {
        assert_eq!(status_of(b"HTTP/1.1 408 Request Timeout\r\n"), Some(408));
        assert_eq!(status_of(b"HTTP/1.0 400"), Some(400));
        assert_eq!(status_of(b"HTTP/1.1 4"), None);
        assert_eq!(status_of(b"\x15\x03\x03"), None);
    }
}
