//! `handshake-flood`: full TLS handshakes, each connection dropped the moment its handshake
//! completes — the server's dearest per-connection cost, asked for from many addresses. At
//! `rate_per_s` new connections (open loop, at most `connections` in flight), or as fast as
//! `connections` slots can go when no rate is given.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::{open_tcp, open_tls, Driver, Next, Shared};
use super::{
    check_connections, check_pool, check_rate, check_tls, BoxFuture, Kind, Plan, PlanContext, Pool,
    Window,
};
use crate::net::Target;
use crate::report::Stats;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeFlood {
    pub name: String,
    /// Handshakes in flight at once: the slots (no rate) or the cap (with a rate).
    pub connections: usize,
    pub sources: IpNet,
    /// New handshakes per second (open loop).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

impl Kind for HandshakeFlood {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)?;
        check_rate(&self.name, self.rate_per_s)?;
        check_tls(&self.name, s)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, _: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(HandshakePlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
        }))
    }
}

/// Handshakes, dropped once complete: `handshake-flood` and `tls-churn`. Their times go in
/// the report's `handshakes` (never in `ok_latency`: no answer was asked for).
pub struct HandshakePlan {
    pub driver: Driver,
}

impl Plan for HandshakePlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let st = stats.clone();
        Box::pin(self.driver.drive(window, stats, move |ip, deadline| {
            handshake_once(target.clone(), ip, deadline, st.clone())
        }))
    }
}

async fn handshake_once(target: Arc<Target>, ip: IpAddr, deadline: Instant, stats: Shared) -> Next {
    let began = Instant::now();
    stats.lock().handshakes_attempted += 1;
    let Some(tcp) = open_tcp(&target, ip, deadline, &stats).await else {
        return Next::Pause;
    };
    match open_tls(&target, tcp, began, deadline, &stats).await {
        // Dropped here: the handshake is all this client wanted.
        Some(_tls) => Next::Again,
        None => Next::Pause,
    }
}
