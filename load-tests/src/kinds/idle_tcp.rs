//! `idle-tcp`: connect, never send a byte, hold until the server closes (or the run ends);
//! each slot then reconnects from the next address. What an accept limit and a handshake
//! timeout must absorb: `connections` held from as many addresses as `sources` has.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::{closed_by_server, open_tcp, until_closed, Driver, Next, Shared};
use super::{
    check_connections, check_pool, check_rate, BoxFuture, Kind, Plan, PlanContext, Pool, Window,
};
use crate::net::Target;
use crate::report::Stats;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleTcp {
    pub name: String,
    /// Held at once (or, with `rate_per_s`, the most alive at once).
    pub connections: usize,
    /// Source pool; each new connection takes the next address.
    pub sources: IpNet,
    /// New connections per second instead of holding `connections` (open loop).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

impl Kind for IdleTcp {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)?;
        check_rate(&self.name, self.rate_per_s)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, _: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(HoldPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            prefix: Vec::new(),
        }))
    }
}

/// Connections that send `prefix` (maybe nothing) and then hold: `idle-tcp`,
/// `handshake-stall`, `tls-stall`.
pub struct HoldPlan {
    pub driver: Driver,
    pub prefix: Vec<u8>,
}

impl Plan for HoldPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let (prefix, st) = (Arc::new(self.prefix), stats.clone());
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            hold_once(target.clone(), ip, prefix.clone(), deadline, st.clone())
        }))
    }
}

/// One connection: open, send `prefix`, wait for the server to close it.
async fn hold_once(
    target: Arc<Target>,
    ip: IpAddr,
    prefix: Arc<Vec<u8>>,
    deadline: Instant,
    stats: Shared,
) -> Next {
    use tokio::io::AsyncWriteExt;
    let opened = Instant::now();
    let Some(mut tcp) = open_tcp(&target, ip, deadline, &stats).await else {
        return Next::Pause;
    };
    if !prefix.is_empty() && tcp.write_all(&prefix).await.is_err() {
        closed_by_server(&stats, opened);
        return Next::Again;
    }
    let mut bytes = 0;
    if until_closed(&mut tcp, deadline, &mut bytes).await {
        closed_by_server(&stats, opened);
    }
    stats.lock().bytes_read += bytes;
    Next::Again
}
