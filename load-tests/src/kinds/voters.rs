//! `voters`: voters on the roll casting pre-signed ballots over keep-alive connections opened
//! before the clock, each voter revoting with rising `seq` — the throughput and latency
//! kind. (`arrivals` is the kind where each voter comes once, on a fresh connection.)

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use urna::ballot::keys::VoterSecret;

use super::http::{check_streams, http_plan, Shape, Work};
use super::retry::RetryPolicy;
use super::{check_connections, check_pool, check_rate, Kind, Plan, PlanContext, Pool};
use crate::ballots::{presign, seq_base};
use crate::scenario::Scenario;

/// Most ballots one voters task may pre-sign (each is held in memory, ~1 KiB).
pub const MAX_BALLOTS: usize = 5_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voters {
    pub name: String,
    /// Keep-alive connections; each has one request in flight (HTTP/1.1) or
    /// `streams_per_connection` (HTTP/2).
    pub connections: usize,
    /// Source addresses: connection `i` binds the `i`-th host address of this network (and
    /// takes the next one `connections` further on when it reconnects).
    pub sources: IpNet,
    /// Total ballots per second across the task (open loop, latency measured from the
    /// scheduled send time); absent: as fast as answers come back (closed loop).
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Ballots to pre-sign; the task stops early when they are all sent.
    pub ballots: usize,
    /// Size of each ballot's opaque payload, in bytes.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    #[serde(default)]
    pub http2: bool,
    #[serde(default = "one")]
    pub streams_per_connection: usize,
    /// Only voters of this algorithm (`ed25519` or `p256`); absent: every voter.
    #[serde(default)]
    pub alg: Option<String>,
    /// Retries of one ballot (0..=100) after a 429/503 (waiting out its `Retry-After`,
    /// × a random factor in [0.5, 1.5]) or a broken connection; then it is given up and
    /// counted as failed.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Longest wait for one `Retry-After` (jitter included), in ms (1..=600000).
    #[serde(default = "default_max_retry_wait_ms")]
    pub max_retry_wait_ms: u64,
}

pub fn default_max_retries() -> u32 {
    5
}

pub fn default_max_retry_wait_ms() -> u64 {
    10_000
}

pub fn default_payload_bytes() -> usize {
    512
}

fn one() -> usize {
    1
}

impl Kind for Voters {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_connections(name, self.connections)?;
        check_pool(name, &self.sources)?;
        anyhow::ensure!(
            (1..=MAX_BALLOTS).contains(&self.ballots),
            "task {name}: ballots must be in 1..={MAX_BALLOTS}"
        );
        anyhow::ensure!(s.voters.is_some(), "task {name}: needs `voters`");
        anyhow::ensure!(
            self.max_retries <= 100,
            "task {name}: max_retries must be at most 100"
        );
        anyhow::ensure!(
            (1..=600_000).contains(&self.max_retry_wait_ms),
            "task {name}: max_retry_wait_ms must be in 1..=600000"
        );
        check_rate(name, self.rate_per_s)?;
        check_streams(name, self.http2, self.streams_per_connection)
    }

    fn voters_wanted(&self, _: &Scenario) -> usize {
        self.ballots
    }

    fn shares_voters(&self) -> bool {
        true
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        // Each voters task takes its own slice of the electorate, so two tasks never race
        // one voter's seqs.
        let alg = self.alg.as_deref();
        let wanted = |v: &VoterSecret| alg.is_none_or(|a| v.alg().as_str() == a);
        let picked: Vec<usize> = (cx.voter_offset..cx.voters.len())
            .filter(|&i| wanted(&cx.voters[i]))
            .take(self.ballots.min(cx.voters_allotted))
            .collect();
        anyhow::ensure!(
            !picked.is_empty(),
            "no voters left in the voters file for task {}",
            self.name
        );
        cx.voter_offset = picked[picked.len() - 1] + 1;
        let mine: Vec<&VoterSecret> = picked.iter().map(|&i| &cx.voters[i]).collect();
        let lanes = self.connections * self.streams_per_connection;
        let mut lists = presign(
            &mine,
            &cx.scenario.election,
            self.ballots,
            lanes,
            self.payload_bytes,
            seq_base(),
            crate::seed::mix(cx.scenario.run_seed(), &self.name, 0),
        )
        .into_iter();
        let shape = Shape {
            connections: self.connections,
            streams: self.streams_per_connection,
            http2: self.http2,
            rate_per_s: self.rate_per_s,
            pool: Pool::new(self.sources),
            requests_per_connection: None,
            retry: Some(RetryPolicy {
                max_retries: self.max_retries,
                max_wait: Duration::from_millis(self.max_retry_wait_ms),
            }),
            verifier_key: cx.verifier_key.clone(),
        };
        let seed = crate::seed::mix(cx.scenario.run_seed(), &self.name, 1);
        Ok(Box::new(
            http_plan(shape, cx.host, || {
                Work::Ballots(lists.next().unwrap_or_default())
            })
            .seeded(seed),
        ))
    }
}
