//! `arrivals`: voters as they really come — each once, at its own time (open loop), from an
//! address of its own, on a FRESH TCP+TLS connection opened at its arrival (nothing is
//! opened before the clock). It posts its one pre-signed ballot, maybe revotes on the same
//! connection, and leaves. On 429/503 it waits out `Retry-After` (× a random factor in
//! [0.5, 1.5], capped) and tries again, on a new connection if the server closed the old;
//! on a refused, reset or failed connection it retries after a short backoff — up to
//! `max_retries` retries and `deadline_s` after its arrival.
//!
//! Latency is from the arrival (the scheduled time, not when the voter got to send), the
//! handshake, waits and retries included: what a person at a screen would see.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use ipnet::IpNet;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at};
use urna::ballot::keys::VoterSecret;

use super::hold::Shared;
use super::voters::{default_payload_bytes, MAX_BALLOTS};
use super::{
    check_pool, check_rate, us_since, BoxFuture, Kind, Plan, PlanContext, Pool, Window,
    MAX_CONNECTIONS,
};
use crate::ballots::{presign, seq_base};
use crate::h1::{encode_request, Conn, H1Error};
use crate::net::{tcp, Io, Target};
use crate::receipts::{check_receipt, request_body};
use crate::report::{ArrivalStats, Stats};
use crate::scenario::Scenario;

/// First pause after a broken connection; doubles per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause after a broken connection.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    pub name: String,
    /// Voters arriving per second, on average (open loop).
    pub rate_per_s: f64,
    /// How arrivals are spaced: `even` (every `1 / rate_per_s` s) or `poisson` (exponential
    /// gaps, drawn from `seed` before the run: the same scenario makes the same schedule).
    #[serde(default)]
    pub spacing: Spacing,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Source pool: voter `i` uses address `257·i` (wrapping when there are more voters):
    /// consecutive voters come from different /24s, as real voters arrive from all over the
    /// address space rather than one subnet in turn (20 voters a second from one /24 is a
    /// carrier NAT, which a server's per-prefix fairness treats as one busy client).
    pub sources: IpNet,
    /// Share of voters (0..=1, spread evenly) who send a second ballot, with a higher `seq`,
    /// on the same connection after their first is accepted.
    #[serde(default)]
    pub revote_share: f64,
    /// Retries per voter (0..=100) after 429/503 or a broken connection.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// A voter gives up this long after arriving (1..=600 s); the run may last this long
    /// past `duration_s` for the last arrivals.
    #[serde(default = "default_deadline_s")]
    pub deadline_s: u64,
    /// Longest wait for one `Retry-After` (jitter included), in ms (1..=600000).
    #[serde(default = "default_max_retry_wait_ms")]
    pub max_retry_wait_ms: u64,
    /// Voters connected at once (1..=20000). One that arrives past it waits for a place:
    /// its wait counts in its latency, and its deadline runs.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Only voters of this algorithm (`ed25519` or `p256`); absent: every voter.
    #[serde(default)]
    pub alg: Option<String>,
}

/// How arrivals are spaced in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spacing {
    #[default]
    Even,
    Poisson,
}

fn default_seed() -> u64 {
    1
}
fn default_max_retries() -> u32 {
    5
}
fn default_deadline_s() -> u64 {
    30
}
fn default_max_retry_wait_ms() -> u64 {
    10_000
}
fn default_max_in_flight() -> usize {
    10_000
}

impl Arrivals {
    /// When each voter arrives, as offsets from the start: every one before `duration`.
    pub fn schedule(&self, duration: Duration) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let mut t = 0.0f64;
        let end = duration.as_secs_f64();
        // Bounded by MAX_BALLOTS as well as by the window.
        for i in 0..MAX_BALLOTS {
            t = match self.spacing {
                Spacing::Even => i as f64 / self.rate_per_s,
                Spacing::Poisson => {
                    // Exponential gap: -ln(U) / rate, U in (0, 1].
                    let u: f64 = 1.0 - rng.gen::<f64>();
                    t - u.ln() / self.rate_per_s
                }
            };
            if t >= end {
                break;
            }
            out.push(Duration::from_secs_f64(t));
        }
        out
    }

    /// Whether voter `i` revotes: `revote_share` of them, spread evenly.
    fn revotes(&self, i: usize) -> bool {
        let s = self.revote_share;
        ((i + 1) as f64 * s).floor() > (i as f64 * s).floor()
    }
}

impl Kind for Arrivals {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_rate(name, Some(self.rate_per_s))?;
        check_pool(name, &self.sources)?;
        anyhow::ensure!(s.voters.is_some(), "task {name}: needs `voters`");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.revote_share),
            "task {name}: revote_share must be in 0..=1"
        );
        anyhow::ensure!(
            self.max_retries <= 100,
            "task {name}: max_retries must be at most 100"
        );
        anyhow::ensure!(
            (1..=600).contains(&self.deadline_s),
            "task {name}: deadline_s must be in 1..=600"
        );
        anyhow::ensure!(
            (1..=600_000).contains(&self.max_retry_wait_ms),
            "task {name}: max_retry_wait_ms must be in 1..=600000"
        );
        anyhow::ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.max_in_flight),
            "task {name}: max_in_flight must be in 1..={MAX_CONNECTIONS}"
        );
        anyhow::ensure!(
            self.payload_bytes <= 64 * 1024,
            "task {name}: payload_bytes must be at most 65536"
        );
        // The schedule is bounded by MAX_BALLOTS; a rate that would need more is refused
        // rather than silently cut.
        let expected = self.rate_per_s * s.duration_s as f64;
        anyhow::ensure!(
            expected < MAX_BALLOTS as f64,
            "task {name}: rate_per_s × duration_s must stay under {MAX_BALLOTS} voters"
        );
        Ok(())
    }

    fn voters_wanted(&self, s: &Scenario) -> usize {
        self.schedule(Duration::from_secs(s.duration_s)).len()
    }

    fn max_sockets(&self) -> usize {
        self.max_in_flight
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let schedule = self.schedule(Duration::from_secs(cx.scenario.duration_s));
        let n = schedule.len();
        let alg = self.alg.as_deref();
        let wanted = |v: &VoterSecret| alg.is_none_or(|a| v.alg().as_str() == a);
        let picked: Vec<usize> = (cx.voter_offset..cx.voters.len())
            .filter(|&i| wanted(&cx.voters[i]))
            .take(n)
            .collect();
        // A key used twice would make its second voter a revote (200) or a conflict (409),
        // not a new voter: refuse rather than measure the wrong thing.
        anyhow::ensure!(
            picked.len() == n,
            "task {}: {n} voters arrive ({} /s for {} s) but only {} unused voter keys{} are \
             left in the voters file after earlier tasks; each arriving voter needs a key of \
             its own (serve with more demo voters, or lower rate_per_s)",
            self.name,
            self.rate_per_s,
            cx.scenario.duration_s,
            picked.len(),
            alg.map(|a| format!(" of {a}")).unwrap_or_default(),
        );
        if let Some(&last) = picked.last() {
            cx.voter_offset = last + 1;
        }
        let mine: Vec<&VoterSecret> = picked.iter().map(|&i| &cx.voters[i]).collect();
        // One ballot per voter (list `k` holds voter `k`'s), above every earlier run's seqs;
        // the revoters' second ballots one seq higher.
        let base = seq_base();
        let election = &cx.scenario.election;
        let seed = cx.scenario.run_seed();
        let firsts = presign(
            &mine,
            election,
            n,
            n,
            self.payload_bytes,
            base,
            crate::seed::mix(seed, &self.name, 0),
        );
        let revoters: Vec<usize> = (0..n).filter(|&i| self.revotes(i)).collect();
        let again: Vec<&VoterSecret> = revoters.iter().map(|&i| mine[i]).collect();
        let seconds = presign(
            &again,
            election,
            again.len(),
            again.len(),
            self.payload_bytes,
            base + 1,
            crate::seed::mix(seed, &self.name, 1),
        );
        let mut revote: Vec<Option<Bytes>> = vec![None; n];
        for (&i, list) in revoters.iter().zip(seconds) {
            revote[i] = list.into_iter().next().map(|b| ballot_request(cx.host, &b));
        }
        let pool = Pool::new(self.sources);
        let voters = schedule
            .into_iter()
            .zip(firsts)
            .zip(revote)
            .enumerate()
            .filter_map(|(i, ((at, first), revote))| {
                let ballot = ballot_request(cx.host, first.first()?);
                Some(Voter {
                    jitter_seed: crate::seed::mix(seed, &format!("{}/jitter", self.name), i as u64),
                    at,
                    ip: pool.addr(i.wrapping_mul(VOTER_STRIDE)),
                    ballot,
                    revote,
                })
            })
            .collect();
        Ok(Box::new(ArrivalsPlan {
            voters,
            rules: Arc::new(Rules {
                max_retries: self.max_retries,
                deadline: Duration::from_secs(self.deadline_s),
                max_retry_wait: Duration::from_millis(self.max_retry_wait_ms),
                verifier_key: cx.verifier_key.clone(),
            }),
            max_in_flight: self.max_in_flight,
        }))
    }
}

fn ballot_request(host: &str, body: &[u8]) -> Bytes {
    encode_request(&Method::POST, host, "/v1/ballots", Some(body))
}

/// One voter, ready before the clock.
struct Voter {
    /// Arrival, from the start of the window.
    at: Duration,
    ip: IpAddr,
    /// The whole request, encoded.
    ballot: Bytes,
    revote: Option<Bytes>,
    /// Seeds this voter's retry jitter (from the run's seed: a replay waits alike).
    jitter_seed: u64,
}

/// How voters retry and when they give up.
struct Rules {
    max_retries: u32,
    deadline: Duration,
    max_retry_wait: Duration,
    /// The log's verifier key: each receipt is checked offline with it.
    verifier_key: Option<Arc<str>>,
}

struct ArrivalsPlan {
    voters: Vec<Voter>,
    rules: Arc<Rules>,
    max_in_flight: usize,
}

/// Step between two voters' addresses: past a /24 (256), and prime, so that stepping through
/// a pool whose size it does not divide visits every address once before any repeats.
const VOTER_STRIDE: usize = 257;

impl Plan for ArrivalsPlan {
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats> {
        Box::pin(self.arrive(target, window))
    }

    fn isolated(&self) -> bool {
        true
    }
}

impl ArrivalsPlan {
    async fn arrive(self, target: Arc<Target>, window: Window) -> Stats {
        let stats = Shared::default();
        stats.lock().arrivals = Some(ArrivalStats::default());
        let cap = Arc::new(Semaphore::new(self.max_in_flight));
        let mut set = JoinSet::new();
        // Bounded: one pass over the pre-signed voters, each due before the deadline.
        for v in self.voters {
            let arrived = window.start + v.at;
            if arrived >= window.deadline {
                break;
            }
            sleep_until(arrived.into()).await;
            while set.try_join_next().is_some() {}
            let (target, rules, stats, cap) = (
                target.clone(),
                self.rules.clone(),
                stats.clone(),
                cap.clone(),
            );
            set.spawn(async move {
                let outcome = vote(&target, &v, arrived, &rules, &stats, &cap).await;
                outcome.record(&stats, arrived);
            });
        }
        // Every voter ends by its own deadline.
        while set.join_next().await.is_some() {}
        stats.take()
    }
}

/// How one voter's visit ended.
#[derive(Debug, Default)]
struct Outcome {
    /// The first ballot's 2xx, when it came.
    accepted: bool,
    retries: u32,
    revoted: bool,
    revote_accepted: bool,
    /// Why it gave up, if it did.
    failure: Option<&'static str>,
    final_status: Option<u16>,
    /// When the 2xx came.
    accepted_at: Option<Instant>,
    /// The first ballot's receipt, checked offline (when the run checks receipts).
    receipt: Option<crate::receipts::Checked>,
}

impl Outcome {
    fn record(self, stats: &Shared, arrived: Instant) {
        let mut st = stats.lock();
        let live = st.live.clone();
        let Some(a) = st.arrivals.as_mut() else {
            return;
        };
        a.arrived += 1;
        a.retries += u64::from(self.retries);
        if self.accepted {
            a.accepted += 1;
            if self.retries == 0 {
                a.accepted_first_try += 1;
            }
            let at = self.accepted_at.unwrap_or_else(Instant::now);
            if let Some(l) = &live {
                l.legit(at.duration_since(arrived));
            }
            a.from_arrival_us
                .saturating_record(at.duration_since(arrived).as_micros().max(1) as u64);
        } else {
            let why = self.failure.unwrap_or("timeout");
            *a.failures.entry(why.to_owned()).or_default() += 1;
            if let Some(s) = self.final_status {
                *a.final_statuses.entry(s).or_default() += 1;
            }
        }
        if let Some(r) = self.receipt {
            a.receipt(r);
        }
        if self.revoted {
            a.revotes_sent += 1;
            a.revotes_accepted += u64::from(self.revote_accepted);
        }
    }
}

/// One voter's visit: connect, post, retry as the rules allow, maybe revote, leave.
async fn vote(
    target: &Target,
    v: &Voter,
    arrived: Instant,
    rules: &Rules,
    stats: &Shared,
    cap: &Semaphore,
) -> Outcome {
    let give_up = arrived + rules.deadline;
    let mut out = Outcome::default();
    // A place among the voters connected at once; the wait counts in the latency.
    let Ok(Ok(_place)) = timeout_at(give_up.into(), cap.acquire()).await else {
        out.failure = Some("timeout");
        return out;
    };
    let mut conn: Option<Conn<Io>> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut rng = rand::rngs::StdRng::seed_from_u64(v.jitter_seed);
    // Bounded by max_retries (each pass either returns or spends a retry) and by give_up.
    'visit: loop {
        // Why this attempt failed, when it was the connection.
        let broke: &'static str = 'attempt: {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match open(target, v.ip, give_up, stats).await {
                    Ok(c) => conn.insert(c),
                    Err(why) => break 'attempt why,
                },
            };
            let answer = match timeout_at(give_up.into(), c.send(&v.ballot)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => break 'attempt reset_or_tls(&e),
                Err(_) => break 'attempt "timeout",
            };
            stats.lock().answered(answer.status, answer.body);
            if (200..300).contains(&answer.status) {
                if let Some(key) = rules.verifier_key.as_deref() {
                    out.receipt = Some(check_receipt(answer.body, request_body(&v.ballot), key));
                }
            }
            let (status, close, retry_after_s) =
                (answer.status, answer.close, answer.retry_after_s);
            if close {
                conn = None;
            }
            if (200..300).contains(&status) {
                out.accepted = true;
                out.accepted_at = Some(Instant::now());
                if let Some(revote) = &v.revote {
                    out.revoted = true;
                    out.revote_accepted = revote_once(target, v.ip, conn, revote, give_up, stats)
                        .await
                        .is_some_and(|s| (200..300).contains(&s));
                }
                return out;
            }
            if status != 429 && status != 503 {
                out.failure = Some("status");
                out.final_status = Some(status);
                return out;
            }
            if out.retries >= rules.max_retries {
                out.failure = Some("status");
                out.final_status = Some(status);
                return out;
            }
            out.retries += 1;
            // Wait as told, spread by jitter so refused voters do not come back together.
            let told = Duration::from_secs(retry_after_s.unwrap_or(1));
            let wait = told
                .mul_f64(rng.gen_range(0.5..1.5))
                .min(rules.max_retry_wait);
            if Instant::now() + wait >= give_up {
                out.failure = Some("timeout");
                return out;
            }
            tokio::time::sleep(wait).await;
            continue 'visit;
        };
        // The connection failed (or never opened): a short backoff, then a new one.
        conn = None;
        if broke == "timeout" || Instant::now() >= give_up {
            out.failure = Some("timeout");
            return out;
        }
        if out.retries >= rules.max_retries {
            out.failure = Some(broke);
            return out;
        }
        out.retries += 1;
        let pause = backoff.mul_f64(rng.gen_range(0.5..1.5));
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if Instant::now() + pause >= give_up {
            out.failure = Some("timeout");
            return out;
        }
        tokio::time::sleep(pause).await;
    }
}

/// A fresh connection from `ip`: TCP, then TLS unless the target is plain. Records the
/// connect, the handshake time, or why it failed.
async fn open(
    target: &Target,
    ip: IpAddr,
    give_up: Instant,
    stats: &Shared,
) -> Result<Conn<Io>, &'static str> {
    let began = Instant::now();
    let tcp = match timeout_at(give_up.into(), tcp(target, ip)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => {
            stats.lock().fail("connect");
            return Err("connect");
        }
        Err(_) => return Err("timeout"),
    };
    stats.lock().connects += 1;
    let Some(tls) = target.tls(false) else {
        return Ok(Conn::new(Io::Plain(tcp)));
    };
    let hs = tokio_rustls::TlsConnector::from(tls).connect(target.server_name.clone(), tcp);
    match timeout_at(give_up.into(), hs).await {
        Ok(Ok(s)) => {
            stats.lock().handshake(us_since(began));
            Ok(Conn::new(Io::Tls(Box::new(s))))
        }
        Ok(Err(_)) => {
            stats.lock().fail("tls");
            Err("tls")
        }
        Err(_) => Err("timeout"),
    }
}

/// A send that broke: the server reset or closed the connection (`reset`), or what came
/// back could not be read as HTTP.
fn reset_or_tls(e: &H1Error) -> &'static str {
    match e {
        H1Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => "tls",
        _ => "reset",
    }
}

/// The revote: on the same connection if the server kept it, else on a new one; one try.
async fn revote_once(
    target: &Target,
    ip: IpAddr,
    conn: Option<Conn<Io>>,
    revote: &Bytes,
    give_up: Instant,
    stats: &Shared,
) -> Option<u16> {
    let mut c = match conn {
        Some(c) => c,
        None => open(target, ip, give_up, stats).await.ok()?,
    };
    match timeout_at(give_up.into(), c.send(revote)).await {
        Ok(Ok(a)) => {
            stats.lock().answered(a.status, a.body);
            Some(a.status)
        }
        Ok(Err(_)) => {
            stats.lock().fail("reset");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(extra: &str) -> Arrivals {
        toml::from_str(&format!(
            "name = \"a\"\nrate_per_s = 20\nsources = \"127.200.0.0/14\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn even_arrivals_come_every_one_over_rate_and_stop_at_the_duration() {
        let a = arrivals("");
        let s = a.schedule(Duration::from_secs(3));
        assert_eq!(s.len(), 60);
        assert_eq!(s[1], Duration::from_millis(50));
        assert!(s.last().unwrap() < &Duration::from_secs(3));
    }

    #[test]
    fn poisson_arrivals_average_the_rate_and_repeat_for_one_seed() {
        let a = arrivals("spacing = \"poisson\"\nseed = 7");
        let s = a.schedule(Duration::from_secs(100));
        // Mean 2000, standard deviation ~45: ten of them either way is far outside chance.
        assert!((1550..=2450).contains(&s.len()), "{}", s.len());
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s, a.schedule(Duration::from_secs(100)));
    }

    #[test]
    fn the_revote_share_picks_that_share_of_voters_spread_out() {
        let a = arrivals("revote_share = 0.25");
        let picked: Vec<usize> = (0..12).filter(|&i| a.revotes(i)).collect();
        assert_eq!(picked, [3, 7, 11]);
        let none = arrivals("");
        assert!((0..100).all(|i| !none.revotes(i)));
        let all = arrivals("revote_share = 1.0");
        assert!((0..100).all(|i| all.revotes(i)));
    }

    #[test]
    fn defaults_are_the_documented_ones_and_bounds_are_refused() {
        let a = arrivals("");
        assert_eq!(
            (a.max_retries, a.deadline_s, a.spacing),
            (5, 30, Spacing::Even)
        );
        let s: Scenario = toml::from_str(
            r#"
            target = "127.0.0.1:8443"
            ca = "cert.pem"
            voters = "voters.jsonl"
            duration_s = 5
            election = "e"
            audit = false
            [[task]]
            kind = "arrivals"
            name = "a"
            rate_per_s = 20
            sources = "127.200.0.0/14"
        "#,
        )
        .unwrap();
        s.check().unwrap();
        assert_eq!(s.tasks[0].spec().voters_wanted(&s), 100);
        for bad in [
            "revote_share = 1.5",
            "max_retries = 101",
            "deadline_s = 0",
            "max_in_flight = 20001",
        ] {
            let a = arrivals(bad);
            assert!(a.check(&s).is_err(), "{bad}");
        }
        let mut huge = arrivals("");
        huge.sources = "127.0.0.0/8".parse().unwrap();
        assert!(huge.check(&s).is_err());
        let mut no_voters = s.clone();
        no_voters.voters = None;
        assert!(a.check(&no_voters).is_err());
    }
}
