//! The kinds of client a task can be, one file each, behind one interface.
//!
//! A kind is a TOML table (its config struct, `kind = "..."` picks it) that implements
//! [`Kind`]: bounds for its keys, what it needs from the run (voter keys, sockets), and a
//! [`Plan`] built before the clock (signing, encoding) that runs in the run's window. A new
//! kind is a file here plus one line in the `registry!` below: the scenario parser, the
//! checks and the runner dispatch through the registry, never through a match of their own.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;
use urna::ballot::keys::VoterSecret;

use crate::net::{source_addr, Target};
use crate::report::Stats;
use crate::scenario::Scenario;

pub mod arrivals;
pub mod flood;
pub mod h2_frames;
pub mod handshake_flood;
pub mod handshake_stall;
pub mod header_bomb;
pub mod hold;
pub mod http;
pub mod idle_keepalive;
pub mod idle_tcp;
pub mod malformed_json;
pub mod oversize_body;
pub mod probe;
pub mod read_flood;
pub mod replay;
pub mod retry;
pub mod slow_body;
pub mod slow_read;
pub mod slowloris;
pub mod tls_churn;
pub mod tls_stall;
pub mod voters;

/// How long answers still in flight at the deadline may take before they are abandoned.
pub const GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed connect, so a refusing server is not spun against.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// Most connections one task may hold (or have in flight) at once.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Most addresses in one task's source pool: a /12 of IPv4 (1,048,576). Addresses are
/// computed, never stored, so the pool costs nothing; the bound keeps a typo (`/4`) from
/// reading as a plan.
pub const MAX_POOL_ADDRESSES: u128 = 1 << 20;
/// Fastest rate a task may ask for, in new connections or requests per second.
pub const MAX_RATE_PER_S: f64 = 10_000_000.0;

/// A future a plan runs; boxed so plans of every kind share one type.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every kind answers before the run.
pub trait Kind: Send + Sync {
    fn name(&self) -> &str;
    /// Bounds every key (the simulator must stop by itself and hold a bounded amount);
    /// `s` for what the kind needs from the scenario (voters, TLS).
    fn check(&self, s: &Scenario) -> anyhow::Result<()>;
    /// Voter keys this task takes from the voters file (each task gets its own slice, so two
    /// tasks never race one voter's seqs).
    fn voters_wanted(&self, _s: &Scenario) -> usize {
        0
    }
    /// Whether the task can do with fewer keys than it wants (its ballots cycle over its
    /// keys with rising seqs), when the voters file is short of what all tasks want.
    fn shares_voters(&self) -> bool {
        false
    }
    /// Sockets the task may hold at once, for the open-files check at start.
    fn max_sockets(&self) -> usize;
    /// Everything costly, before the clock: signing, encoding.
    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>>;
}

/// What a kind's `plan` may use.
pub struct PlanContext<'a> {
    pub scenario: &'a Scenario,
    /// The whole voters file as loaded (at most what the tasks together want).
    pub voters: &'a [VoterSecret],
    /// The first voter no earlier task has taken; a task that takes voters moves it on.
    pub voter_offset: usize,
    /// Keys this task may take from `voter_offset` on (what it wants, or its share of a
    /// file too small for every task: see [`crate::runner::allot`]).
    pub voters_allotted: usize,
    /// The log's verifier key (from `GET /v1/election`), when the scenario checks receipts:
    /// voters check each receipt offline with it.
    pub verifier_key: Option<std::sync::Arc<str>>,
    /// The `Host` header HTTP/1.1 requests carry.
    pub host: &'a str,
    pub target: &'a Target,
}

/// A planned task.
pub trait Plan: Send {
    /// Connections opened before the clock (keep-alive lanes), by `until`. Most kinds open
    /// theirs in the window instead: a fresh connection is what they measure.
    fn connect<'a>(&'a mut self, _target: &'a Arc<Target>, _until: Instant) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Runs in the window; ends by the deadline (plus [`GRACE`] for answers in flight).
    fn run(self: Box<Self>, target: Arc<Target>, window: Window) -> BoxFuture<'static, Stats>;
    /// Whether the task measures the service (the arriving voters) and so runs on a
    /// runtime of its own: real voters are other machines, and their latency must not
    /// include a wait in the attack tasks' run queue of this process.
    fn isolated(&self) -> bool {
        false
    }
}

/// When a run's tasks send and when what they see counts.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// HTTP lanes start sending (the warm-up begins).
    pub launch: Instant,
    /// Answers to requests scheduled from here on are counted; kinds without a warm-up
    /// start here.
    pub start: Instant,
    /// Nothing new is sent from here on.
    pub deadline: Instant,
}

/// Declares every kind: `"toml-name" => Variant(module::Config)`. The one place a new kind
/// is registered.
macro_rules! registry {
    ($($kind:tt => $variant:ident($($config:ident)::+)),+ $(,)?) => {
        /// One kind of client, as a scenario's `[[task]]` table names it with `kind`.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Task {
            $(#[serde(rename = $kind)] $variant($($config)::+),)+
        }

        impl Task {
            /// The kind's own interface.
            pub fn spec(&self) -> &dyn Kind {
                match self {
                    $(Task::$variant(c) => c,)+
                }
            }

            /// The `kind` key's value.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Task::$variant(_) => $kind,)+
                }
            }
        }

        /// Every `kind` a scenario may name.
        pub const KINDS: &[&str] = &[$($kind),+];
    };
}

registry! {
    "voters" => Voters(voters::Voters),
    "arrivals" => Arrivals(arrivals::Arrivals),
    "flood" => Flood(flood::Flood),
    "slowloris" => Slowloris(slowloris::Slowloris),
    "handshake-stall" => HandshakeStall(handshake_stall::HandshakeStall),
    "tls-churn" => TlsChurn(tls_churn::TlsChurn),
    "idle-tcp" => IdleTcp(idle_tcp::IdleTcp),
    "tls-stall" => TlsStall(tls_stall::TlsStall),
    "idle-keepalive" => IdleKeepalive(idle_keepalive::IdleKeepalive),
    "handshake-flood" => HandshakeFlood(handshake_flood::HandshakeFlood),
    "slow-body" => SlowBody(slow_body::SlowBody),
    "slow-read" => SlowRead(slow_read::SlowRead),
    "read-flood" => ReadFlood(read_flood::ReadFlood),
    "oversize-body" => OversizeBody(oversize_body::OversizeBody),
    "header-bomb" => HeaderBomb(header_bomb::HeaderBomb),
    "malformed-json" => MalformedJson(malformed_json::MalformedJson),
    "replay" => Replay(replay::Replay),
    "h2-frames" => H2Frames(h2_frames::H2Frames),
}

impl Task {
    pub fn name(&self) -> &str {
        self.spec().name()
    }
}

/// A task's source addresses: the host addresses of one network, handed out in order and
/// wrapping. Computed on demand, so a pool of a million addresses costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    net: IpNet,
}

impl Pool {
    pub fn new(net: IpNet) -> Pool {
        Pool { net }
    }

    /// Address `i` of the pool (wrapping).
    pub fn addr(&self, i: usize) -> IpAddr {
        source_addr(&self.net, i)
    }

    /// The address slot `slot` of `slots` uses on its `round`-th connection: slot `j` takes
    /// addresses `j`, `j + slots`, `j + 2·slots`, ... So the slots together walk the whole
    /// pool before any address repeats, and when the pool is exactly `slots` addresses each
    /// slot keeps its own address (the behaviour before pools were cycled).
    pub fn cycled(&self, slot: usize, slots: usize, round: usize) -> IpAddr {
        self.addr(slot.wrapping_add(round.wrapping_mul(slots)))
    }

    /// Host addresses in the pool (the network address itself is skipped unless it is all
    /// there is).
    pub fn addresses(&self) -> u128 {
        pool_len(&self.net)
    }
}

fn pool_len(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if bits == 0 {
        1
    } else if bits >= 64 {
        u64::MAX as u128
    } else {
        (1u128 << bits) - 1
    }
}

/// `connections` in 1..=[`MAX_CONNECTIONS`].
pub fn check_connections(name: &str, connections: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_CONNECTIONS).contains(&connections),
        "task {name}: connections must be in 1..={MAX_CONNECTIONS}"
    );
    Ok(())
}

/// A source pool of at most [`MAX_POOL_ADDRESSES`] addresses.
pub fn check_pool(name: &str, sources: &IpNet) -> anyhow::Result<()> {
    anyhow::ensure!(
        pool_len(sources) <= MAX_POOL_ADDRESSES,
        "task {name}: sources {sources} has more than {MAX_POOL_ADDRESSES} addresses"
    );
    Ok(())
}

/// A rate in (0, [`MAX_RATE_PER_S`]].
pub fn check_rate(name: &str, rate: Option<f64>) -> anyhow::Result<()> {
    if let Some(r) = rate {
        anyhow::ensure!(
            r > 0.0 && r <= MAX_RATE_PER_S,
            "task {name}: rate_per_s must be in (0, 1e7]"
        );
    }
    Ok(())
}

/// A pause in 1..=60000 ms.
pub fn check_interval(name: &str, interval_ms: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=60_000).contains(&interval_ms),
        "task {name}: interval_ms must be in 1..=60000"
    );
    Ok(())
}

/// The kinds that speak TLS need a TLS target.
pub fn check_tls(name: &str, s: &Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(
        !s.plain && s.ca.is_some(),
        "task {name}: needs a TLS target (ca, not plain)"
    );
    Ok(())
}

/// Microseconds since `since`, at least 1 (histograms start at 1 µs).
pub fn us_since(since: Instant) -> u64 {
    since.elapsed().as_micros().max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_walk_the_whole_pool_before_any_address_repeats() {
        let pool = Pool::new("127.200.0.0/28".parse().unwrap());
        assert_eq!(pool.addresses(), 15);
        let mut seen = std::collections::HashSet::new();
        // 5 slots, 3 rounds each: 15 connections, 15 distinct addresses.
        for round in 0..3 {
            for slot in 0..5 {
                assert!(seen.insert(pool.cycled(slot, 5, round)));
            }
        }
        // The 16th wraps to the first.
        assert_eq!(pool.cycled(0, 5, 3), pool.cycled(0, 5, 0));
    }

    #[test]
    fn a_pool_as_large_as_the_slots_keeps_each_slot_on_its_own_address() {
        let pool = Pool::new("127.77.0.0/30".parse().unwrap());
        for round in 0..4 {
            assert_eq!(pool.cycled(1, 3, round).to_string(), "127.77.0.2");
        }
    }

    #[test]
    fn a_million_address_pool_is_allowed_and_a_larger_one_refused() {
        check_pool("t", &"127.0.0.0/12".parse().unwrap()).unwrap();
        assert!(check_pool("t", &"127.0.0.0/11".parse().unwrap()).is_err());
        let big = Pool::new("127.192.0.0/12".parse().unwrap());
        assert_eq!(big.addr(999_999).to_string(), "127.207.66.64");
    }

    #[test]
    fn every_registered_kind_parses_by_its_name() {
        assert!(KINDS.contains(&"handshake-stall"));
        let t: Task = toml::from_str(
            "kind = \"idle-tcp\"\nname = \"i\"\nconnections = 3\nsources = \"127.9.0.0/16\"\n",
        )
        .unwrap();
        assert_eq!(t.kind(), "idle-tcp");
        assert_eq!(t.name(), "i");
        let typo = toml::from_str::<Task>(
            "kind = \"idle-tcp\"\nname = \"i\"\nconections = 3\nsources = \"127.9.0.0/16\"\n",
        );
        assert!(typo.is_err());
    }
}
