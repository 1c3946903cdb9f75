//! A scenario file: the target, how long, and the tasks that run side by side.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// Longest run a scenario may ask for. An attack tool that forgets to stop is an attack.
pub const MAX_DURATION_S: u64 = 3600;
/// Most connections one task may open.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Most ballots one voters task may pre-sign (each is held in memory, ~1 KiB).
pub const MAX_BALLOTS: usize = 5_000_000;

/// One run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `host:port` of the deployment's ballot listener.
    pub target: SocketAddr,
    /// TLS server name (SNI and certificate check).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// PEM file of the CA (or self-signed certificate) to trust. Required unless `plain`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Speak plain HTTP (a listener behind a TLS-terminating balancer).
    #[serde(default)]
    pub plain: bool,
    /// How long every task runs, in seconds.
    pub duration_s: u64,
    /// Pause between opening the connections and starting the clock, in ms (default 1000,
    /// at most 60000). Opening hundreds of TLS connections at once leaves both sides busy
    /// for a moment after the last handshake; measured without it, the first ~0.2 s of a
    /// 10k/s run answered in 100–300 ms and made the run's p99 (load-tests/README.md).
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Seconds HTTP tasks send before the counted `duration_s` begins (default 0, at most
    /// 600): caches, allocator and scheduler reach their steady state, and only that is
    /// reported. Ballots sent in the warm-up come out of the task's `ballots`.
    #[serde(default)]
    pub warmup_s: u64,
    /// The election id the voters' ballots name.
    pub election: String,
    /// The electorate's secret keys (`urna roll generate --keys`), one JSON object a line.
    #[serde(default)]
    pub voters: Option<PathBuf>,
    #[serde(rename = "task")]
    pub tasks: Vec<Task>,
}

fn default_settle_ms() -> u64 {
    1000
}

fn default_server_name() -> String {
    "localhost".into()
}

/// One kind of client.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Task {
    /// Voters on the roll casting signed ballots (each voter revotes with rising `seq`).
    Voters {
        name: String,
        /// Keep-alive connections; each has one request in flight (HTTP/1.1) or
        /// `streams_per_connection` (HTTP/2).
        connections: usize,
        /// Source addresses: connection `i` binds the `i`-th host address of this network.
        sources: IpNet,
        /// Total ballots per second across the task (open loop, latency measured from the
        /// scheduled send time); absent: as fast as answers come back (closed loop).
        #[serde(default)]
        rate_per_s: Option<f64>,
        /// Ballots to pre-sign; the task stops early when they are all sent.
        ballots: usize,
        /// Size of each ballot's opaque payload, in bytes.
        #[serde(default = "default_payload_bytes")]
        payload_bytes: usize,
        #[serde(default)]
        http2: bool,
        #[serde(default = "one")]
        streams_per_connection: usize,
        /// Only voters of this algorithm (`ed25519` or `p256`); absent: every voter.
        #[serde(default)]
        alg: Option<String>,
    },
    /// The same request, over and over, from few sources: what a rate limiter must absorb.
    Flood {
        name: String,
        connections: usize,
        sources: IpNet,
        request: FloodRequest,
        #[serde(default)]
        rate_per_s: Option<f64>,
        #[serde(default)]
        http2: bool,
        #[serde(default = "one")]
        streams_per_connection: usize,
    },
    /// Connections that send a request head one byte at a time and never finish it.
    Slowloris {
        name: String,
        connections: usize,
        sources: IpNet,
        /// Pause between bytes, in ms.
        interval_ms: u64,
    },
    /// TCP connections that never start (or never finish) the TLS handshake.
    HandshakeStall {
        name: String,
        connections: usize,
        sources: IpNet,
    },
    /// Full TLS handshakes, dropped at once: the CPU cost of handshakes.
    TlsChurn {
        name: String,
        connections: usize,
        sources: IpNet,
    },
}

/// What a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodRequest {
    /// `GET /v1/election`.
    GetElection,
    /// `GET /log/checkpoint`.
    GetCheckpoint,
    /// `POST /v1/ballots` with a body that is not a submission.
    JunkBallot,
    /// A well-formed ballot for a voter on the roll, with a corrupted signature.
    BadSignature,
    /// A correctly signed ballot from a key that is not on the roll.
    Unlisted,
}

fn default_payload_bytes() -> usize {
    512
}
fn one() -> usize {
    1
}

impl Task {
    pub fn name(&self) -> &str {
        match self {
            Task::Voters { name, .. }
            | Task::Flood { name, .. }
            | Task::Slowloris { name, .. }
            | Task::HandshakeStall { name, .. }
            | Task::TlsChurn { name, .. } => name,
        }
    }

    fn connections(&self) -> usize {
        match self {
            Task::Voters { connections, .. }
            | Task::Flood { connections, .. }
            | Task::Slowloris { connections, .. }
            | Task::HandshakeStall { connections, .. }
            | Task::TlsChurn { connections, .. } => *connections,
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file; relative paths in it are taken from the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        s.ca = s.ca.map(|p| base.join(p));
        s.voters = s.voters.map(|p| base.join(p));
        s.check()?;
        Ok(s)
    }

    /// Bounds every knob: the simulator must stop by itself and hold a bounded amount.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_DURATION_S).contains(&self.duration_s),
            "duration_s must be in 1..={MAX_DURATION_S}"
        );
        anyhow::ensure!(self.settle_ms <= 60_000, "settle_ms must be at most 60000");
        anyhow::ensure!(self.warmup_s <= 600, "warmup_s must be at most 600");
        anyhow::ensure!(
            self.plain || self.ca.is_some(),
            "ca is required unless plain = true"
        );
        anyhow::ensure!(
            !self.tasks.is_empty(),
            "a scenario needs at least one [[task]]"
        );
        for t in &self.tasks {
            let c = t.connections();
            anyhow::ensure!(
                (1..=MAX_CONNECTIONS).contains(&c),
                "task {}: connections must be in 1..={MAX_CONNECTIONS}",
                t.name()
            );
            match t {
                Task::Voters {
                    ballots,
                    rate_per_s,
                    streams_per_connection,
                    http2,
                    ..
                } => {
                    anyhow::ensure!(
                        (1..=MAX_BALLOTS).contains(ballots),
                        "task {}: ballots must be in 1..={MAX_BALLOTS}",
                        t.name()
                    );
                    anyhow::ensure!(self.voters.is_some(), "task {}: needs `voters`", t.name());
                    check_rate(t.name(), *rate_per_s)?;
                    check_streams(t.name(), *http2, *streams_per_connection)?;
                }
                Task::Flood {
                    request,
                    rate_per_s,
                    streams_per_connection,
                    http2,
                    ..
                } => {
                    if *request == FloodRequest::BadSignature {
                        anyhow::ensure!(self.voters.is_some(), "task {}: needs `voters`", t.name());
                    }
                    check_rate(t.name(), *rate_per_s)?;
                    check_streams(t.name(), *http2, *streams_per_connection)?;
                }
                Task::Slowloris { interval_ms, .. } => {
                    anyhow::ensure!(
                        (1..=60_000).contains(interval_ms),
                        "interval_ms must be in 1..=60000"
                    );
                }
                Task::HandshakeStall { .. } | Task::TlsChurn { .. } => {}
            }
        }
        Ok(())
    }
}

/// HTTP/2 lanes share a connection; an HTTP/1.1 connection carries one request at a time.
fn check_streams(name: &str, http2: bool, streams: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=256).contains(&streams),
        "task {name}: streams_per_connection must be in 1..=256"
    );
    anyhow::ensure!(
        http2 || streams == 1,
        "task {name}: streams_per_connection > 1 needs http2 (an HTTP/1.1 connection carries one request at a time)"
    );
    Ok(())
}

fn check_rate(name: &str, rate: Option<f64>) -> anyhow::Result<()> {
    if let Some(r) = rate {
        anyhow::ensure!(
            r > 0.0 && r <= 10_000_000.0,
            "task {name}: rate_per_s must be in (0, 1e7]"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_unbounded_runs_are_refused() {
        let ok = r#"
            target = "127.0.0.1:8443"
            ca = "cert.pem"
            duration_s = 5
            election = "demo-2026"
            [[task]]
            kind = "flood"
            name = "f"
            connections = 4
            sources = "127.0.0.9/32"
            request = "get-election"
        "#;
        let s: Scenario = toml::from_str(ok).unwrap();
        s.check().unwrap();
        let typo = ok.replace("duration_s", "duration");
        assert!(toml::from_str::<Scenario>(&typo).is_err());
        let forever: Scenario = toml::from_str(&ok.replace("= 5", "= 999999")).unwrap();
        assert!(forever.check().is_err());
        let crowd: Scenario = toml::from_str(&ok.replace("= 4", "= 1000000")).unwrap();
        assert!(crowd.check().is_err());
        assert_eq!(s.settle_ms, 1000);
        let idle: Scenario =
            toml::from_str(&ok.replace("duration_s = 5", "duration_s = 5\nsettle_ms = 60001"))
                .unwrap();
        assert!(idle.check().is_err());
        let long: Scenario =
            toml::from_str(&ok.replace("duration_s = 5", "duration_s = 5\nwarmup_s = 601"))
                .unwrap();
        assert!(long.check().is_err());
        let h1_streams: Scenario =
            toml::from_str(&format!("{ok}streams_per_connection = 2\n")).unwrap();
        assert!(h1_streams.check().is_err());
        let h2_streams: Scenario =
            toml::from_str(&format!("{ok}streams_per_connection = 2\nhttp2 = true\n")).unwrap();
        h2_streams.check().unwrap();
    }
}
