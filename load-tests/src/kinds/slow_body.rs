//! `slow-body`: a valid ballot request head announcing a normal ballot's `Content-Length`,
//! then the body a few bytes per `interval_ms`: it never finishes in time. The server should
//! answer 408 after its body timeout and close.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::Driver;
use super::slowloris::{Drip, DripPlan};
use super::{
    check_connections, check_interval, check_pool, check_rate, Kind, Plan, PlanContext, Pool,
};
use crate::scenario::Scenario;

/// Largest body a slow-body request may announce (the server's default `max_body_bytes` is
/// 32 KiB; past it the server answers 413 at once, which is a different test).
const MAX_BODY_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowBody {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    /// Pause between pieces of the body, in ms.
    pub interval_ms: u64,
    /// Bytes per piece (1..=1024).
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// The `Content-Length` announced: a normal ballot's size by default (a 512-byte
    /// payload signed with ed25519 is ~1 KB).
    #[serde(default = "default_body_bytes")]
    pub body_bytes: usize,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

fn default_chunk_bytes() -> usize {
    4
}

fn default_body_bytes() -> usize {
    1024
}

impl Kind for SlowBody {
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
            (1..=1024).contains(&self.chunk_bytes),
            "task {name}: chunk_bytes must be in 1..=1024"
        );
        anyhow::ensure!(
            (1..=MAX_BODY_BYTES).contains(&self.body_bytes),
            "task {name}: body_bytes must be in 1..={MAX_BODY_BYTES}"
        );
        Ok(())
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let head = format!(
            "POST /v1/ballots HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            cx.host, self.body_bytes
        );
        // The body's bytes are JSON whitespace: whatever arrives is never malformed, so the
        // only thing wrong with the request is its pace.
        let pieces = self.body_bytes.div_ceil(self.chunk_bytes);
        Ok(Box::new(DripPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            drip: Arc::new(Drip {
                first: head.into_bytes(),
                chunk: vec![b' '; self.chunk_bytes],
                // One piece fewer than the whole body: the request never completes, so the
                // server's timeout is what ends it.
                chunks: Some(pieces.saturating_sub(1)),
                interval: Duration::from_millis(self.interval_ms),
            }),
        }))
    }
}
