//! `read-flood`: the log's read side as a mirror fleet or a scraper would hit it — the
//! checkpoint, level-0 hash tiles, entry bundles and receipts (`GET /log/checkpoint`,
//! `/log/tile/0/<N>[.p/<W>]`, `/log/tile/entries/<N>[.p/<W>]`, `/v1/receipts/<index>`),
//! mixed by `paths` weights, on keep-alive connections cycled through the pool. Before the
//! clock it reads the checkpoint once to name resources that exist (a flood of 404s is
//! another test): each tile is checked to be `32 × width` bytes.

use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use serde::Deserialize;
use tokio::time::timeout_at;
use urna::log::tiles::{Resource, TILE_WIDTH};

use super::probe::{check_lanes, check_probing, driver, head, MixPlan, Probe};
use super::{BoxFuture, Kind, Plan, PlanContext, Window};
use crate::net::{connect_h1, Target};
use crate::report::Stats;
use crate::scenario::Scenario;

/// Resources of each class the mix names (spread over the log): enough that a cache of
/// one hot tile is not all that is measured, few enough to encode in a blink.
const PER_CLASS: usize = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadFlood {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    /// New connections per second (open loop), each sending `requests_per_connection`.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Reads per connection before it is closed and the next opened from the next address.
    #[serde(default = "default_per_connection")]
    pub requests_per_connection: usize,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default = "one")]
    pub seed: u64,
    #[serde(default = "answer_wait_ms")]
    pub answer_wait_ms: u64,
}

fn default_per_connection() -> usize {
    20
}
fn one() -> u64 {
    1
}
fn answer_wait_ms() -> u64 {
    2_000
}

/// How often each class of read is picked, relative to the others (0: never; at most 1000).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    #[serde(default = "w1")]
    pub checkpoint: u32,
    #[serde(default = "w1")]
    pub tile: u32,
    #[serde(default = "w1")]
    pub entries: u32,
    #[serde(default = "w1")]
    pub receipt: u32,
}

fn w1() -> u32 {
    1
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            checkpoint: 1,
            tile: 1,
            entries: 1,
            receipt: 1,
        }
    }
}

impl Kind for ReadFlood {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        let p = self.paths;
        let weights = [p.checkpoint, p.tile, p.entries, p.receipt];
        anyhow::ensure!(
            weights.iter().all(|w| *w <= 1000) && weights.iter().any(|w| *w > 0),
            "task {name}: paths weights must be in 0..=1000, one at least 1"
        );
        check_probing(name, self.requests_per_connection, self.answer_wait_ms)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(ReadFloodPlan {
            paths: self.paths,
            host: cx.host.to_owned(),
            // A log of one entry (the manifest, always there) until its size is read.
            mix: MixPlan::new(
                &self.name,
                driver(self.connections, self.rate_per_s, self.sources),
                probes(self.paths, cx.host, 1),
                self.requests_per_connection,
                self.answer_wait_ms,
                self.seed,
            )?,
        }))
    }
}

/// A read flood whose resources are named once the log's size is known.
struct ReadFloodPlan {
    paths: Paths,
    host: String,
    mix: MixPlan,
}

impl Plan for ReadFloodPlan {
    /// Reads the checkpoint (before the clock) for the log's size, and names resources
    /// of that log. A checkpoint that cannot be read leaves a log of one entry (the
    /// manifest, always there).
    fn connect<'a>(&'a mut self, target: &'a Arc<Target>, until: Instant) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ip = self.mix.driver.pool.addr(0);
            let size = timeout_at(until.into(), tree_size(target, ip, &self.host))
                .await
                .ok()
                .flatten()
                .unwrap_or(1);
            self.mix.probes = Arc::new(probes(self.paths, &self.host, size));
        })
    }

    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        Box::new(self.mix).run(target, window)
    }
}

async fn tree_size(target: &Target, ip: std::net::IpAddr, host: &str) -> Option<u64> {
    let mut conn = connect_h1(target, ip).await.ok()?;
    let mut req = head("GET", "/log/checkpoint", host, false);
    req.extend_from_slice(b"\r\n");
    let answer = conn.send(&req).await.ok()?;
    checkpoint_size(answer.body)
}

/// The tree size of a checkpoint note: its second line (C2SP tlog-checkpoint).
pub fn checkpoint_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

/// The probes of a log of `size` entries: `PER_CLASS` of each class with a weight, spread
/// over the log's tiles and entries.
pub fn probes(paths: Paths, host: &str, size: u64) -> Vec<Probe> {
    let size = size.max(1);
    let get = |label: &str, path: &str, weight: u32, expect_len: Option<usize>| {
        let mut req = head("GET", path, host, false);
        req.extend_from_slice(b"\r\n");
        Probe {
            weight,
            expect_len,
            ..Probe::new(label, req)
        }
    };
    // Level-0 tiles: full ones, then the partial one at the right edge.
    let full = size / TILE_WIDTH;
    let partial = (size % TILE_WIDTH) as u32;
    let tiles = full + u64::from(partial > 0);
    let tile_at = |k: usize| {
        let index = (k as u64 * tiles.max(1)) / PER_CLASS as u64 % tiles.max(1);
        let width = if index < full {
            TILE_WIDTH as u32
        } else {
            partial
        };
        (index, width)
    };
    let mut out = Vec::new();
    for k in 0..PER_CLASS {
        if paths.checkpoint > 0 {
            out.push(get("checkpoint", "/log/checkpoint", paths.checkpoint, None));
        }
        let (index, width) = tile_at(k);
        if paths.tile > 0 {
            let r = Resource::Tile {
                level: 0,
                index,
                width,
            };
            let path = format!("/log/{}", r.path());
            out.push(get("tile", &path, paths.tile, Some(32 * width as usize)));
        }
        if paths.entries > 0 {
            let path = format!("/log/{}", Resource::Entries { index, width }.path());
            out.push(get("entries", &path, paths.entries, None));
        }
        if paths.receipt > 0 {
            // Entry 0 is the manifest, not a ballot: receipts are for 1.. when there are any.
            let i = if size > 1 {
                1 + (k as u64 * (size - 1)) / PER_CLASS as u64
            } else {
                0
            };
            out.push(get(
                "receipt",
                &format!("/v1/receipts/{i}"),
                paths.receipt,
                None,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_named_are_those_of_a_log_of_that_size() {
        let ps = probes(Paths::default(), "h", 300);
        let text: Vec<String> = ps
            .iter()
            .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
            .collect();
        assert!(text.iter().any(|t| t.starts_with("GET /log/tile/0/000 ")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("GET /log/tile/0/001.p/44 ")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("GET /log/tile/entries/001.p/44 ")));
        assert!(text.iter().all(|t| !t.contains("/v1/receipts/0 ")));
        let partial = ps
            .iter()
            .find(|p| p.bytes.starts_with(b"GET /log/tile/0/001.p/44 "))
            .unwrap();
        assert_eq!(partial.expect_len, Some(32 * 44));
        assert_eq!(ps.len(), 4 * PER_CLASS);
        let only = probes(
            Paths {
                checkpoint: 0,
                tile: 0,
                entries: 0,
                receipt: 3,
            },
            "h",
            1,
        );
        assert!(only.iter().all(|p| p.weight == 3 && p.label == "receipt"));
        assert_eq!(checkpoint_size(b"origin\n42\nhash\n"), Some(42));
    }
}
