//! `slow-read`: requests sent whole (`pipeline` of them at once, e.g. `GET /log/checkpoint`
//! or a tile), answers read `read_bytes` per `interval_ms` through a tiny receive window —
//! so the server's answers back up in its send buffer and its writes stall. What a write
//! or request timeout must cut.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use ipnet::IpNet;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout_at};

use super::hold::{closed_by_server, open_tls, Driver, Next, Shared};
use super::{
    check_connections, check_interval, check_pool, check_rate, BoxFuture, Kind, Plan, PlanContext,
    Pool, Window,
};
use crate::h1::encode_request;
use crate::net::{tcp_with, Target};
use crate::report::Stats;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowRead {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    /// Pause between reads, in ms.
    pub interval_ms: u64,
    /// Bytes read each time (1..=65536).
    #[serde(default = "default_read_bytes")]
    pub read_bytes: usize,
    /// The GET each request makes.
    #[serde(default = "default_path")]
    pub path: String,
    /// Requests written back to back on each connection (1..=1000): enough answers to fill
    /// the server's send buffer when each is small.
    #[serde(default = "default_pipeline")]
    pub pipeline: usize,
    /// The socket's receive buffer (256..=1 MiB; the kernel doubles it and keeps a floor).
    #[serde(default = "default_recv_buffer_bytes")]
    pub recv_buffer_bytes: u32,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

fn default_read_bytes() -> usize {
    16
}
fn default_path() -> String {
    "/log/checkpoint".into()
}
fn default_pipeline() -> usize {
    64
}
fn default_recv_buffer_bytes() -> u32 {
    1024
}

impl Kind for SlowRead {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_connections(name, self.connections)?;
        check_pool(name, &self.sources)?;
        check_rate(name, self.rate_per_s)?;
        check_interval(name, self.interval_ms)?;
        anyhow::ensure!(
            (1..=65_536).contains(&self.read_bytes),
            "task {name}: read_bytes must be in 1..=65536"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.pipeline),
            "task {name}: pipeline must be in 1..=1000"
        );
        anyhow::ensure!(
            (256..=1 << 20).contains(&self.recv_buffer_bytes),
            "task {name}: recv_buffer_bytes must be in 256..=1048576"
        );
        anyhow::ensure!(
            self.path.starts_with('/') && self.path.len() <= 1024,
            "task {name}: path must start with / and be at most 1024 bytes"
        );
        Ok(())
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let one = encode_request(&Method::GET, cx.host, &self.path, None);
        let requests = Bytes::from(one.repeat(self.pipeline));
        Ok(Box::new(SlowReadPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            reader: Arc::new(Reader {
                requests,
                read_bytes: self.read_bytes,
                interval: Duration::from_millis(self.interval_ms),
                recv_buffer_bytes: self.recv_buffer_bytes,
            }),
        }))
    }
}

struct Reader {
    requests: Bytes,
    read_bytes: usize,
    interval: Duration,
    recv_buffer_bytes: u32,
}

struct SlowReadPlan {
    driver: Driver,
    reader: Arc<Reader>,
}

impl Plan for SlowReadPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let (reader, st) = (self.reader, stats.clone());
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            read_once(target.clone(), ip, reader.clone(), deadline, st.clone())
        }))
    }
}

async fn read_once(
    target: Arc<Target>,
    ip: IpAddr,
    reader: Arc<Reader>,
    deadline: Instant,
    stats: Shared,
) -> Next {
    let began = Instant::now();
    let tcp = match timeout_at(
        deadline.into(),
        tcp_with(&target, ip, Some(reader.recv_buffer_bytes)),
    )
    .await
    {
        Ok(Ok(s)) => {
            stats.lock().connects += 1;
            s
        }
        Ok(Err(_)) => {
            stats.lock().fail("connect");
            return Next::Pause;
        }
        Err(_) => return Next::Again,
    };
    let closed = if target.is_tls() {
        match open_tls(&target, tcp, began, deadline, &stats).await {
            Some(tls) => read_slowly(tls, &reader, deadline, &stats).await,
            None => return Next::Pause,
        }
    } else {
        read_slowly(tcp, &reader, deadline, &stats).await
    };
    if closed {
        closed_by_server(&stats, began);
    }
    Next::Again
}

/// Writes the requests, then reads a few bytes per interval; true when the server closed
/// the connection before `deadline`.
async fn read_slowly<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    reader: &Reader,
    deadline: Instant,
    stats: &Shared,
) -> bool {
    // The server may stop reading our requests once its answers back up: the write is
    // bounded by the deadline like everything else.
    match timeout_at(deadline.into(), async {
        s.write_all(&reader.requests).await?;
        s.flush().await
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return true,
        Err(_) => return false,
    }
    let mut buf = vec![0u8; reader.read_bytes];
    let mut next = Instant::now();
    loop {
        next += reader.interval;
        if next >= deadline {
            return false;
        }
        sleep_until(next.into()).await;
        match timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => stats.lock().bytes_read += n as u64,
            Err(_) => return false,
        }
    }
}
