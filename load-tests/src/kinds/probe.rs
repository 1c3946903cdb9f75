//! The engine the HTTP/1.1 probing kinds share (`read-flood`, `oversize-body`,
//! `header-bomb`, `malformed-json`, `replay`): connections from the task's pool, opened by
//! the [`hold`](super::hold) driver (held slots, or an open-loop rate of new connections),
//! requests written exactly as the kind encoded them before the clock — lies and all — and
//! what the server did to each (its status and error code, a close, silence) counted under
//! the probe's label in the report's `outcomes`.
//!
//! Not the `http` lanes of `voters` and `flood`: those send well-formed requests whose
//! answers frame the connection; a probe's request may be one the server must refuse
//! mid-body (a lying `Content-Length`), so the engine reads an answer even when its write
//! failed, and a probe may end its connection (after a lie the framing is unknown).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::distributions::{Distribution, WeightedIndex};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout_at;

use super::hold::{open_tcp, open_tls, Driver, Next, Shared};
use super::{check_connections, check_pool, check_rate, BoxFuture, Plan, Pool, Window, GRACE};
use crate::h1::H1Error;
use crate::net::{H1Conn, Io, Target};
use crate::report::{error_code, Stats};
use ipnet::IpNet;

/// Longest a probe waits for its answer by default: past the server's body timeout (5 s),
/// so a body that never comes is seen answered 408 rather than given up on.
pub const DEFAULT_ANSWER_WAIT: Duration = Duration::from_secs(8);

/// One request a probing kind sends.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Names the probe in the report's outcomes (`truncated`, `declared-larger`, ...).
    pub label: String,
    /// The request's bytes, exactly as sent (encoded before the clock).
    pub bytes: Bytes,
    /// A 2xx to this probe is a hostile ballot accepted (malformed, oversized): counted in
    /// `hostile_ballots`, which fails the run.
    pub must_refuse: bool,
    /// Read-flood: the length a 2xx body must have (a tile of `w` hashes is `32·w` bytes);
    /// another length is counted as `<label>: wrong length`.
    pub expect_len: Option<usize>,
    /// The connection is closed after this probe: after a lying request the stream's
    /// framing is unknown, and what follows would be read as the next answer.
    pub ends_connection: bool,
    /// How often the mix picks this probe, relative to the others (1..=1000).
    pub weight: u32,
}

impl Probe {
    /// A probe of weight 1 that keeps its connection.
    pub fn new(label: impl Into<String>, bytes: impl Into<Bytes>) -> Probe {
        Probe {
            label: label.into(),
            bytes: bytes.into(),
            must_refuse: false,
            expect_len: None,
            ends_connection: false,
            weight: 1,
        }
    }
}

/// What the server did to one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// An answer: its status, its `{"error": code}` if any, its body's length, and whether
    /// the server ends the connection after it.
    Answered {
        status: u16,
        code: Option<String>,
        len: usize,
        close: bool,
    },
    /// The connection ended before any byte of an answer (EOF or reset).
    Closed,
    /// Nothing came back within the probe's wait (or the run's grace).
    Silent,
    /// The answer could not be framed, or the connection broke in the middle of it.
    Broken,
}

impl Reaction {
    /// Whether the connection may carry the next probe.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, Reaction::Answered { close: false, .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Reaction::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How the report names it: `400 malformed`, `431`, `closed`, `silent`, `broken`.
    pub fn describe(&self) -> String {
        match self {
            Reaction::Answered {
                status,
                code: Some(c),
                ..
            } => format!("{status} {}", truncate(c, 40)),
            Reaction::Answered { status, .. } => status.to_string(),
            Reaction::Closed => "closed".into(),
            Reaction::Silent => "silent".into(),
            Reaction::Broken => "broken".into(),
        }
    }
}

/// At most `n` bytes of `s` (at a char boundary): codes are the server's words, and the
/// outcome keys are bounded.
fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Opens an HTTP/1.1 connection from `ip` (TLS unless the target is plain) by `deadline`,
/// counting the connect, the handshake or why either failed.
pub async fn open(
    target: &Target,
    ip: IpAddr,
    deadline: Instant,
    stats: &Shared,
) -> Option<H1Conn> {
    let began = Instant::now();
    let tcp = open_tcp(target, ip, deadline, stats).await?;
    let io = if target.is_tls() {
        Io::Tls(Box::new(
            open_tls(target, tcp, began, deadline, stats).await?,
        ))
    } else {
        Io::Plain(tcp)
    };
    Some(H1Conn::new(io))
}

/// Sends `probe` on `conn` and waits until `by` for its answer; records the reaction (and
/// a 2xx's latency) into `stats` under the probe's label, and returns it.
pub async fn exchange(conn: &mut H1Conn, probe: &Probe, by: Instant, stats: &Shared) -> Reaction {
    let sent = Instant::now();
    let reaction = match timeout_at(by.into(), send(conn, &probe.bytes)).await {
        Err(_) => Reaction::Silent,
        Ok(r) => r,
    };
    let mut st = stats.lock();
    record(&mut st, probe, &reaction, sent.elapsed());
    reaction
}

/// Counts `reaction` to `probe`: status and code, the outcome under its label, a 2xx that
/// must not be, a body of the wrong length.
pub fn record(st: &mut Stats, probe: &Probe, reaction: &Reaction, latency: Duration) {
    match reaction {
        Reaction::Answered {
            status, code, len, ..
        } => {
            st.status(*status);
            if let Some(c) = code {
                *st.codes.entry(truncate(c, 40).to_owned()).or_default() += 1;
            }
            if (200..300).contains(status) {
                st.ok_latency_us
                    .saturating_record(latency.as_micros().max(1) as u64);
                if probe.must_refuse {
                    st.hostile_ballots += 1;
                }
                if probe.expect_len.is_some_and(|want| want != *len) {
                    st.outcome(&format!("{}: wrong length", probe.label));
                }
            }
        }
        Reaction::Closed => st.closed_by_server += 1,
        Reaction::Silent => st.fail("timeout"),
        Reaction::Broken => st.fail("reset"),
    }
    st.outcome(&format!("{}: {}", probe.label, reaction.describe()));
}

/// Writes `bytes` and reads the answer. A write the server cut (it answered 413 on the
/// head and closed before taking the body) is not the end: its answer may be waiting.
async fn send(conn: &mut H1Conn, bytes: &[u8]) -> Reaction {
    let answer = match conn.send(bytes).await {
        Err(H1Error::Io(_)) | Err(H1Error::Closed) => conn.read_answer().await,
        other => other,
    };
    match answer {
        Ok(a) => Reaction::Answered {
            status: a.status,
            code: if (200..300).contains(&a.status) {
                None
            } else {
                error_code(a.body)
            },
            len: a.body.len(),
            close: a.close,
        },
        Err(H1Error::Closed) => Reaction::Closed,
        Err(_) => Reaction::Broken,
    }
}

/// A mix of probes, picked at random (by weight, from a seed) on connections from the
/// driver's pool: each connection sends up to `per_connection` probes, one at a time,
/// until one ends it or the server closes it.
pub struct MixPlan {
    pub driver: Driver,
    pub probes: Arc<Vec<Probe>>,
    pub per_connection: usize,
    /// Longest a probe waits for its answer.
    pub answer_wait: Duration,
    /// Connection `n` picks its probes from a generator seeded with `seed` and `n`: a run
    /// is repeatable, and connections do not all send the same sequence.
    pub seed: u64,
}

impl Plan for MixPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let st = stats.clone();
        let MixPlan {
            driver,
            probes,
            per_connection,
            answer_wait,
            seed,
        } = *self;
        let weights = probes.iter().map(|p| p.weight);
        // `MixPlan::new` checked the weights (at least one probe, each at least 1); a
        // kind that swaps its probes later (read-flood) makes them the same way.
        let pick = Arc::new(WeightedIndex::new(weights).expect("checked: a positive weight"));
        let opened = Arc::new(AtomicU64::new(0));
        Box::pin(driver.drive(window, stats, move |ip, deadline| {
            let (target, probes, pick, st) =
                (target.clone(), probes.clone(), pick.clone(), st.clone());
            let n = opened.fetch_add(1, Ordering::Relaxed);
            async move {
                let Some(mut conn) = open(&target, ip, deadline, &st).await else {
                    return Next::Pause;
                };
                let mut rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for _ in 0..per_connection {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let probe = &probes[pick.sample(&mut rng)];
                    let by = (Instant::now() + answer_wait).min(deadline + GRACE);
                    let r = exchange(&mut conn, probe, by, &st).await;
                    if !r.keeps_connection() || probe.ends_connection {
                        break;
                    }
                }
                // A polite close: the server's view of the next connection is not muddied
                // by a reset of this one.
                let mut io = conn.into_inner();
                let _ = timeout_at(
                    (Instant::now() + Duration::from_millis(100)).into(),
                    io.shutdown(),
                )
                .await;
                Next::Again
            }
        }))
    }
}

impl MixPlan {
    /// A mix of `probes` (task `name`'s), checked: the pick needs one, and weights ≥ 1.
    pub fn new(
        name: &str,
        driver: Driver,
        probes: Vec<Probe>,
        per_connection: usize,
        answer_wait_ms: u64,
        seed: u64,
    ) -> anyhow::Result<MixPlan> {
        check_weights(name, &probes)?;
        Ok(MixPlan {
            driver,
            probes: Arc::new(probes),
            per_connection,
            answer_wait: Duration::from_millis(answer_wait_ms),
            seed,
        })
    }
}

/// The driver of every probing kind: `connections` held slots (or `rate_per_s` new
/// connections a second, at most `connections` alive) from the pool `sources`, a slot
/// opening its next connection as soon as one ends.
pub fn driver(connections: usize, rate_per_s: Option<f64>, sources: IpNet) -> Driver {
    Driver {
        connections,
        rate_per_s,
        reconnect: Duration::ZERO,
        pool: Pool::new(sources),
    }
}

/// The bounds every probing kind's connections share: their count, pool and rate.
pub fn check_lanes(
    name: &str,
    connections: usize,
    sources: &IpNet,
    rate_per_s: Option<f64>,
) -> anyhow::Result<()> {
    check_connections(name, connections)?;
    check_pool(name, sources)?;
    check_rate(name, rate_per_s)
}

/// `per_connection` in 1..=10000, `answer_wait_ms` in 1..=60000.
pub fn check_probing(name: &str, per_connection: usize, answer_wait_ms: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&per_connection),
        "task {name}: requests_per_connection must be in 1..=10000"
    );
    anyhow::ensure!(
        (1..=60_000).contains(&answer_wait_ms),
        "task {name}: answer_wait_ms must be in 1..=60000"
    );
    Ok(())
}

/// Probes to pick from: at least one, every weight in 1..=1000 (what the pick needs).
fn check_weights(name: &str, probes: &[Probe]) -> anyhow::Result<()> {
    anyhow::ensure!(!probes.is_empty(), "task {name}: nothing to send");
    anyhow::ensure!(
        probes.iter().all(|p| (1..=1000).contains(&p.weight)),
        "task {name}: every weight must be in 1..=1000"
    );
    Ok(())
}

/// A mix of probes that each end their connection (after a refused head or a lying
/// length the stream's framing is unknown): one probe a connection.
pub fn one_per_connection(
    name: &str,
    driver: Driver,
    probes: Vec<Probe>,
    answer_wait_ms: u64,
    seed: u64,
) -> anyhow::Result<MixPlan> {
    let probes = probes
        .into_iter()
        .map(|p| Probe {
            ends_connection: true,
            ..p
        })
        .collect();
    MixPlan::new(name, driver, probes, 1, answer_wait_ms, seed)
}

/// A variant's name as the scenario spells it (its serde name, `kebab-case`): the label
/// its probes carry in the report, so the two never drift apart.
pub fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The request head every probing kind starts from: request line, `Host`, and for a body
/// `Content-Type: application/json` (the ballot route's media type), without the blank
/// line that ends the head.
pub fn head(method: &str, path: &str, host: &str, json: bool) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    if json {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    out
}

/// A whole ballot POST with `body` and its true `Content-Length`.
pub fn post_ballot(host: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head("POST", "/v1/ballots", host, true);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(must_refuse: bool, expect_len: Option<usize>) -> Probe {
        Probe {
            must_refuse,
            expect_len,
            ..Probe::new("p", Bytes::new())
        }
    }

    fn answered(status: u16, code: Option<&str>, len: usize) -> Reaction {
        Reaction::Answered {
            status,
            code: code.map(str::to_owned),
            len,
            close: false,
        }
    }

    #[test]
    fn a_2xx_to_a_probe_that_must_be_refused_is_a_hostile_ballot() {
        let mut st = Stats::default();
        record(
            &mut st,
            &probe(true, None),
            &answered(400, Some("malformed"), 10),
            Duration::ZERO,
        );
        assert_eq!(st.hostile_ballots, 0);
        record(
            &mut st,
            &probe(true, None),
            &answered(201, None, 10),
            Duration::ZERO,
        );
        assert_eq!(st.hostile_ballots, 1);
        assert_eq!(st.outcomes["p: 400 malformed"], 1);
        assert_eq!(st.outcomes["p: 201"], 1);
        assert_eq!(st.codes["malformed"], 1);
    }

    #[test]
    fn a_body_of_the_wrong_length_is_counted() {
        let mut st = Stats::default();
        record(
            &mut st,
            &probe(false, Some(64)),
            &answered(200, None, 64),
            Duration::ZERO,
        );
        assert!(!st.outcomes.contains_key("p: wrong length"));
        record(
            &mut st,
            &probe(false, Some(64)),
            &answered(200, None, 32),
            Duration::ZERO,
        );
        assert_eq!(st.outcomes["p: wrong length"], 1);
    }

    #[test]
    fn a_hostile_ballot_accepted_fails_the_run() {
        use crate::report::{TaskReport, Verdict};
        let expect = crate::scenario::Expect::default();
        let clean = TaskReport::new(
            "mj",
            "malformed-json",
            Duration::from_secs(1),
            &Stats::default(),
        );
        assert!(Verdict::of(&[clean], &expect).passed);
        let mut st = Stats::default();
        record(
            &mut st,
            &probe(true, None),
            &answered(201, None, 10),
            Duration::ZERO,
        );
        let t = TaskReport::new("mj", "malformed-json", Duration::from_secs(1), &st);
        assert_eq!(t.hostile_ballots, 1);
        let v = Verdict::of(&[t], &expect);
        assert!(!v.passed);
        assert!(v.failures[0].contains("1 hostile ballots"), "{v:?}");
    }

    #[test]
    fn outcome_keys_are_bounded() {
        let mut st = Stats::default();
        for i in 0..2 * crate::report::MAX_OUTCOMES {
            st.outcome(&format!("k{i}"));
        }
        assert_eq!(st.outcomes.len(), crate::report::MAX_OUTCOMES + 1);
        assert_eq!(st.outcomes["other"], crate::report::MAX_OUTCOMES as u64);
    }
}
