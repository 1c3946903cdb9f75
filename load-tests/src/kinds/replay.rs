//! `replay`: an attacker who captured real ballots in transit sends them again. For each
//! of its `keys` voter keys (its own slice of the voters file) it first casts two real
//! ballots — the capture: `seq` s+1, then the revote s+2, both logged (201) — and from
//! then on, on fresh connections from other addresses, replays them: the last one exactly
//! (PROTOCOL.md §5: the original receipt, 200, nothing appended), the first one (a stale
//! `seq`: 409 `stale_seq`, "a replayed old ballot cannot undo a revote"), and a ballot of
//! the last one's `seq` with other content, validly signed (409 `conflict`).
//!
//! A 201 to an exact replay, or any 2xx to a stale or conflicting one, means the server
//! logged or accepted a ballot it must not have: counted in `hostile_ballots`, which fails
//! the run.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;
use tokio::time::sleep;

use super::hold::{Driver, Next, Shared};
use super::probe::{
    check_lanes, check_probing, driver, exchange, open, post_ballot, Probe, Reaction,
};
use super::{BoxFuture, Kind, Plan, PlanContext, Window, GRACE};
use crate::ballots::seq_base;
use crate::net::{H1Conn, Target};
use crate::report::Stats;
use crate::scenario::Scenario;

/// Tries of a capture ballot refused 429/503 (the source's budget) before the key is
/// given up: its replays would prove nothing without it logged.
const CAPTURE_TRIES: u32 = 5;
/// Wait between capture tries (at most the run's rest): the per-source budget refills in
/// well under this.
const MAX_CAPTURE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Voter keys captured (1..=10000), each from the voters file, never shared with
    /// another task.
    #[serde(default = "default_keys")]
    pub keys: usize,
    /// Replays per connection (1..=10000); the server closes after
    /// `max_refusals_per_connection` refusals (8), a close is counted and the slot reconnects.
    #[serde(default = "default_per_connection")]
    pub requests_per_connection: usize,
    #[serde(default = "answer_wait_ms")]
    pub answer_wait_ms: u64,
}

fn default_keys() -> usize {
    8
}
fn default_per_connection() -> usize {
    6
}
fn answer_wait_ms() -> u64 {
    super::probe::DEFAULT_ANSWER_WAIT.as_millis() as u64
}

/// One captured key's ballots.
struct Captured {
    /// The first ballot (seq s+1) and the revote (s+2): sent once each, to be logged.
    first: Probe,
    last: Probe,
    /// Replays: the revote exactly, the first (stale), the revote's seq with new content.
    exact: Probe,
    stale: Probe,
    conflict: Probe,
    /// `FRESH`, `CAPTURING`, `CAPTURED` or `LOST`.
    state: AtomicU8,
}

const FRESH: u8 = 0;
const CAPTURING: u8 = 1;
const CAPTURED: u8 = 2;
const LOST: u8 = 3;

impl Kind for Replay {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        anyhow::ensure!(s.voters.is_some(), "task {name}: needs `voters`");
        anyhow::ensure!(
            (1..=10_000).contains(&self.keys),
            "task {name}: keys must be in 1..=10000"
        );
        check_probing(name, self.requests_per_connection, self.answer_wait_ms)
    }

    fn voters_wanted(&self, _: &Scenario) -> usize {
        self.keys
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let n = self.keys.min(cx.voters_allotted);
        let keys = cx
            .voters
            .get(cx.voter_offset..cx.voter_offset + n)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("task {}: no voter keys left", self.name))?;
        cx.voter_offset += n;
        let (election, host, base) = (&cx.scenario.election, cx.host, seq_base());
        let captured = keys
            .iter()
            .map(|k| {
                let first = post_ballot(
                    host,
                    k.sign_submission(election, base + 1, b"first").as_bytes(),
                );
                let last = post_ballot(
                    host,
                    k.sign_submission(election, base + 2, b"revote").as_bytes(),
                );
                let other = post_ballot(
                    host,
                    k.sign_submission(election, base + 2, b"forged").as_bytes(),
                );
                Captured {
                    first: Probe::new("capture", first.clone()),
                    last: Probe::new("capture", last.clone()),
                    exact: Probe::new("exact-replay", last),
                    stale: Probe {
                        must_refuse: true,
                        ..Probe::new("stale-replay", first)
                    },
                    conflict: Probe {
                        must_refuse: true,
                        ..Probe::new("conflict", other)
                    },
                    state: AtomicU8::new(FRESH),
                }
            })
            .collect();
        Ok(Box::new(ReplayPlan {
            driver: driver(self.connections, self.rate_per_s, self.sources),
            keys: Arc::new(captured),
            per_connection: self.requests_per_connection,
            answer_wait: Duration::from_millis(self.answer_wait_ms),
        }))
    }
}

struct ReplayPlan {
    driver: Driver,
    keys: Arc<Vec<Captured>>,
    per_connection: usize,
    answer_wait: Duration,
}

impl Plan for ReplayPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        let stats = Shared::default();
        let st = stats.clone();
        let ReplayPlan {
            driver,
            keys,
            per_connection,
            answer_wait,
        } = *self;
        let opened = Arc::new(AtomicU64::new(0));
        Box::pin(driver.drive(window, stats, move |ip, deadline| {
            let n = opened.fetch_add(1, Ordering::Relaxed) as usize;
            let job = Job {
                target: target.clone(),
                keys: keys.clone(),
                stats: st.clone(),
                per_connection,
                answer_wait,
            };
            job.connection(n, ip, deadline)
        }))
    }
}

struct Job {
    target: Arc<Target>,
    keys: Arc<Vec<Captured>>,
    stats: Shared,
    per_connection: usize,
    answer_wait: Duration,
}

impl Job {
    /// Connection `n`: captures key `n` if no one has yet, else replays it.
    async fn connection(self, n: usize, ip: IpAddr, deadline: Instant) -> Next {
        let key = &self.keys[n % self.keys.len()];
        let capture = key
            .state
            .compare_exchange(FRESH, CAPTURING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !capture && key.state.load(Ordering::Acquire) != CAPTURED {
            // Being captured on another connection, or lost: nothing to replay yet.
            return Next::Again;
        }
        let Some(mut conn) = open(&self.target, ip, deadline, &self.stats).await else {
            if capture {
                key.state.store(FRESH, Ordering::Release);
            }
            return Next::Pause;
        };
        if capture {
            let got = self.cast(&mut conn, &key.first, deadline).await
                && self.cast(&mut conn, &key.last, deadline).await;
            key.state
                .store(if got { CAPTURED } else { LOST }, Ordering::Release);
            return Next::Again;
        }
        let replays = [&key.exact, &key.stale, &key.conflict];
        for i in 0..self.per_connection {
            if Instant::now() >= deadline {
                break;
            }
            let probe = replays[(n + i) % replays.len()];
            let r = exchange(&mut conn, probe, self.by(deadline), &self.stats).await;
            // An exact replay is answered with its original receipt (200); a 201 means it
            // was logged a second time.
            if probe.label == "exact-replay" && r.status() == Some(201) {
                self.stats.lock().hostile_ballots += 1;
            }
            if !r.keeps_connection() {
                break;
            }
        }
        Next::Again
    }

    /// Sends a capture ballot until it is logged (2xx) or refused for good; whether it was.
    async fn cast(&self, conn: &mut H1Conn, probe: &Probe, deadline: Instant) -> bool {
        for _ in 0..CAPTURE_TRIES {
            if Instant::now() >= deadline {
                return false;
            }
            match exchange(conn, probe, self.by(deadline), &self.stats).await {
                Reaction::Answered { status, .. } if (200..300).contains(&status) => return true,
                Reaction::Answered {
                    status: 429 | 503,
                    close: false,
                    ..
                } => {
                    sleep(MAX_CAPTURE_WAIT.min(deadline.saturating_duration_since(Instant::now())))
                        .await
                }
                _ => return false,
            }
        }
        false
    }

    fn by(&self, deadline: Instant) -> Instant {
        (Instant::now() + self.answer_wait).min(deadline + GRACE)
    }
}
