//! `idle-keepalive`: a full TLS handshake, one cheap request (`GET /healthz`), its answer
//! read, then the connection held idle until the server closes it; each slot then
//! reconnects from the next address. What a keep-alive idle timeout must absorb. Time to
//! close is counted from the end of the answer (the start of the idle wait).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use ipnet::IpNet;
use serde::Deserialize;
use tokio::time::timeout_at;

use super::hold::{closed_by_server, open_tcp, open_tls, until_closed, Driver, Next, Shared};
use super::{
    check_connections, check_pool, check_rate, check_tls, BoxFuture, Kind, Plan, PlanContext, Pool,
    Window, GRACE,
};
use crate::h1::{encode_request, Conn};
use crate::net::{Io, Target};
use crate::report::Stats;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleKeepalive {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    /// The one request each connection sends (a GET).
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

fn default_path() -> String {
    "/healthz".into()
}

impl Kind for IdleKeepalive {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_connections(name, self.connections)?;
        check_pool(name, &self.sources)?;
        check_rate(name, self.rate_per_s)?;
        check_tls(name, s)?;
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
        Ok(Box::new(KeepalivePlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            request: encode_request(&Method::GET, cx.host, &self.path, None),
        }))
    }
}

struct KeepalivePlan {
    driver: Driver,
    request: Bytes,
}

impl Plan for KeepalivePlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let (request, st) = (self.request, stats.clone());
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            idle_once(target.clone(), ip, request.clone(), deadline, st.clone())
        }))
    }
}

async fn idle_once(
    target: Arc<Target>,
    ip: IpAddr,
    request: Bytes,
    deadline: Instant,
    stats: Shared,
) -> Next {
    let began = Instant::now();
    let Some(tcp) = open_tcp(&target, ip, deadline, &stats).await else {
        return Next::Pause;
    };
    let Some(tls) = open_tls(&target, tcp, began, deadline, &stats).await else {
        return Next::Pause;
    };
    let mut conn = Conn::new(Io::Tls(Box::new(tls)));
    let sent = Instant::now();
    let close = match timeout_at((deadline + GRACE).into(), conn.send(&request)).await {
        Ok(Ok(answer)) => {
            stats
                .lock()
                .answer(answer.status, answer.body, sent.elapsed());
            answer.close
        }
        Ok(Err(_)) => {
            stats.lock().fail("reset");
            return Next::Again;
        }
        Err(_) => {
            stats.lock().fail("timeout");
            return Next::Again;
        }
    };
    let idle = Instant::now();
    if close {
        closed_by_server(&stats, idle);
        return Next::Again;
    }
    let mut io = conn.into_inner();
    let mut bytes = 0;
    if until_closed(&mut io, deadline, &mut bytes).await {
        closed_by_server(&stats, idle);
    }
    Next::Again
}
