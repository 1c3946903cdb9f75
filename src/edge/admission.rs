//! L4 admission: decides, before a body is read, whether a request may use the server.
//!
//! Rate limits are governor GCRA limiters keyed per source (IPv4 /32, IPv6 /64) and per
//! prefix (IPv4 /24, IPv6 /48), one pair for ballots and a separate, cheaper-to-spend pair
//! for reads, so a read flood cannot spend the ballot budget. Each keyed limiter sits on a
//! [`BoundedStore`]: at most `max_tracked_keys` keys; a key that arrives when the store is
//! full shares one fallback state with every other such key (they are throttled together)
//! until the periodic sweep (`retain_recent` + `shrink_to_fit`) forgets idle keys. Memory
//! stays bounded whatever addresses an attacker spreads over.
//!
//! Load shedding: a global in-flight cap (a semaphore, try-acquire: never a queue) and the
//! backend's queue depth; past either, 503 + Retry-After.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::source::{prefix_key, source_key};
use crate::config::LimitsConfig;

/// A keyed state store with a cap on its keys and one shared fallback state past it.
#[derive(Debug)]
pub struct BoundedStore<K: Hash + Eq + Clone> {
    inner: DashMap<K, InMemoryState>,
    /// The state every new key shares while the store is full.
    overflow: InMemoryState,
    max_keys: usize,
    /// Decisions taken on the fallback state (a gauge of how often the cap bites).
    overflowed: AtomicU64,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(max_keys: usize) -> Self {
        BoundedStore {
            inner: DashMap::new(),
            overflow: InMemoryState::default(),
            max_keys: max_keys.max(1),
            overflowed: AtomicU64::new(0),
        }
    }

    /// Decisions taken on the shared fallback state since start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Known keys and room to spare: the key's own state. The length check and the
        // insert are not atomic together, so concurrent new keys may overshoot the cap by
        // at most the number of threads deciding at once: bounded by the worker count.
        if self.inner.contains_key(key) || self.inner.len() < self.max_keys {
            return self.inner.measure_and_replace(key, f);
        }
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        self.overflow.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.inner, drop_below);
    }
    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.inner);
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// A keyed limiter over a bounded store.
pub type KeyedLimiter<C = DefaultClock> =
    RateLimiter<IpNet, BoundedStore<IpNet>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Makes a keyed limiter of `per_s` sustained and `burst` tokens tracking `max_keys` keys.
pub fn keyed_limiter<C: Clock>(
    per_s: NonZeroU32,
    burst: NonZeroU32,
    max_keys: usize,
    clock: C,
) -> KeyedLimiter<C> {
    RateLimiter::new(
        Quota::per_second(per_s).allow_burst(burst),
        BoundedStore::new(max_keys),
        clock,
    )
}

/// Checks `key`; on refusal, the whole seconds to wait (at least 1) for `Retry-After`.
pub fn check<C: Clock>(limiter: &KeyedLimiter<C>, key: &IpNet) -> Result<(), u64> {
    limiter
        .check_key(key)
        .map(|_| ())
        .map_err(|not_until| retry_secs(not_until.wait_time_from(limiter.clock().now())))
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
}

/// What kind of request asks: ballots and reads have separate budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ballot,
    Read,
}

/// Why L4 refused a request before reading its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 429: this source or its prefix is over its budget.
    #[error("rate limited ({scope}); retry after {retry_after_s} s")]
    RateLimited {
        scope: &'static str,
        retry_after_s: u64,
    },
    /// 503: the server is at its in-flight cap or its backend queue is full.
    #[error("overloaded ({reason}); retry after {retry_after_s} s")]
    Overloaded {
        reason: &'static str,
        retry_after_s: u64,
    },
}

/// A request's place in flight: one of `max_in_flight`, and for a read one of
/// `max_reads_in_flight` too. Both are given back when it drops.
pub struct Permit {
    _all: OwnedSemaphorePermit,
    _read: Option<OwnedSemaphorePermit>,
}

/// L4's shared state.
pub struct Admission {
    ballot_source: KeyedLimiter,
    ballot_prefix: KeyedLimiter,
    read_source: KeyedLimiter,
    read_prefix: KeyedLimiter,
    in_flight: Arc<Semaphore>,
    /// Reads' share of `in_flight` (`max_reads_in_flight`): a read takes one of these as
    /// well, so the rest of `in_flight` is kept for ballots and a read flood, however wide,
    /// cannot answer a voter's ballot with 503.
    reads_in_flight: Arc<Semaphore>,
    shed_queue_depth: usize,
    overloaded_retry_after_s: u64,
    penalty_tokens: NonZeroU32,
}

impl Admission {
    pub fn new(limits: &LimitsConfig) -> Admission {
        let keys = limits.max_tracked_keys.get();
        let mk = |per_s, burst| keyed_limiter(per_s, burst, keys, DefaultClock::default());
        Admission {
            ballot_source: mk(
                limits.ballots_per_source_per_s,
                limits.ballots_burst_per_source,
            ),
            ballot_prefix: mk(
                limits.ballots_per_prefix_per_s,
                limits.ballots_burst_per_prefix,
            ),
            read_source: mk(limits.reads_per_source_per_s, limits.reads_burst_per_source),
            read_prefix: mk(limits.reads_per_prefix_per_s, limits.reads_burst_per_prefix),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.get())),
            reads_in_flight: Arc::new(Semaphore::new(limits.reads_in_flight_cap())),
            shed_queue_depth: limits.shed_queue_depth.get(),
            overloaded_retry_after_s: u64::from(limits.overloaded_retry_after_s.max(1)),
            // A penalty above the burst could never be paid (governor refuses n > burst).
            penalty_tokens: limits.penalty_tokens.min(limits.ballots_burst_per_source),
        }
    }

    /// The rate check for one request of `class` from `ip`: source first, then prefix.
    pub fn check_rate(&self, class: Class, ip: IpAddr) -> Result<(), Refused> {
        let (source, prefix) = match class {
            Class::Ballot => (&self.ballot_source, &self.ballot_prefix),
            Class::Read => (&self.read_source, &self.read_prefix),
        };
        check(source, &source_key(ip)).map_err(|retry_after_s| Refused::RateLimited {
            scope: "source",
            retry_after_s,
        })?;
        check(prefix, &prefix_key(ip)).map_err(|retry_after_s| Refused::RateLimited {
            scope: "prefix",
            retry_after_s,
        })
    }

    /// Takes an in-flight slot, or 503 at once (no queue: a queue would only delay the 503).
    /// `queue_depth` is the backend's current ballot queue; ballots past
    /// `shed_queue_depth` are shed too.
    pub fn enter(&self, class: Class, queue_depth: usize) -> Result<Permit, Refused> {
        self.may_enter(class, queue_depth)?;
        let read = match class {
            Class::Read => Some(
                self.reads_in_flight
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| self.overloaded("reads_in_flight"))?,
            ),
            Class::Ballot => None,
        };
        let all = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.overloaded("in_flight"))?;
        Ok(Permit {
            _all: all,
            _read: read,
        })
    }

    /// What [`Self::enter`] would say now, without taking a slot: a ballot checks it before
    /// reading its body and enters once the body is whole.
    pub fn may_enter(&self, class: Class, queue_depth: usize) -> Result<(), Refused> {
        if class == Class::Ballot && queue_depth >= self.shed_queue_depth {
            return Err(self.overloaded("queue_depth"));
        }
        if self.in_flight.available_permits() == 0 {
            return Err(self.overloaded("in_flight"));
        }
        if class == Class::Read && self.reads_in_flight.available_permits() == 0 {
            return Err(self.overloaded("reads_in_flight"));
        }
        Ok(())
    }

    /// A 503 for `reason`, with the configured `Retry-After`.
    pub fn overloaded(&self, reason: &'static str) -> Refused {
        Refused::Overloaded {
            reason,
            retry_after_s: self.overloaded_retry_after_s,
        }
    }

    /// Requests in flight now.
    pub fn in_flight_available(&self) -> usize {
        self.in_flight.available_permits()
    }

    /// Punishes `ip` for a request the ballot layer found hostile (a bad signature): takes
    /// `penalty_tokens` more from its ballot budget, so a source that sends forgeries
    /// reaches its 429 sooner and costs us fewer signature checks.
    pub fn penalize(&self, ip: IpAddr) {
        let key = source_key(ip);
        // An exhausted budget (Err) is already the goal; InsufficientCapacity cannot happen
        // since the penalty is clamped to the burst.
        let _ = self.ballot_source.check_key_n(&key, self.penalty_tokens);
        metrics::counter!("urna_penalties_total").increment(1);
    }

    /// Forgets keys whose buckets are full again and returns memory. Run periodically.
    pub fn sweep(&self) {
        for limiter in self.limiters() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let [bs, bp, rs, rp] = self.tracked_keys();
        metrics::gauge!("urna_l4_tracked_keys", "limiter" => "ballot_source").set(bs as f64);
        metrics::gauge!("urna_l4_tracked_keys", "limiter" => "ballot_prefix").set(bp as f64);
        metrics::gauge!("urna_l4_tracked_keys", "limiter" => "read_source").set(rs as f64);
        metrics::gauge!("urna_l4_tracked_keys", "limiter" => "read_prefix").set(rp as f64);
    }

    fn limiters(&self) -> [&KeyedLimiter; 4] {
        [
            &self.ballot_source,
            &self.ballot_prefix,
            &self.read_source,
            &self.read_prefix,
        ]
    }

    /// Keys tracked by the ballot-source, ballot-prefix, read-source, read-prefix limiters.
    pub fn tracked_keys(&self) -> [usize; 4] {
        self.limiters().map(|l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroUsize;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }
    fn key(i: u32) -> IpNet {
        source_key(IpAddr::V4(i.into()))
    }

    #[test]
    fn keyed_limiter_never_tracks_more_than_its_cap() {
        let clock = FakeRelativeClock::default();
        let l = keyed_limiter(nz(1), nz(1), 16, clock.clone());
        for i in 0..10_000 {
            let _ = check(&l, &key(i));
            assert!(l.len() <= 16);
        }
    }

    #[test]
    fn past_the_cap_new_keys_share_one_fallback_limiter() {
        let clock = FakeRelativeClock::default();
        let l = keyed_limiter(nz(1), nz(1), 4, clock.clone());
        for i in 0..4 {
            check(&l, &key(i)).unwrap();
        }
        // Known keys keep their own state: spent.
        assert!(check(&l, &key(0)).is_err());
        // Key 4 takes the fallback's one token; key 5 finds it spent though it is new.
        check(&l, &key(4)).unwrap();
        assert_eq!(check(&l, &key(5)), Err(1));
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn sweep_forgets_idle_keys_and_makes_room() {
        let clock = FakeRelativeClock::default();
        let l = keyed_limiter(nz(1), nz(1), 4, clock.clone());
        for i in 0..4 {
            check(&l, &key(i)).unwrap();
        }
        clock.advance(Duration::from_secs(5));
        l.retain_recent();
        l.shrink_to_fit();
        assert_eq!(l.len(), 0);
        for i in 10..14 {
            check(&l, &key(i)).unwrap();
        }
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_secs(Duration::ZERO), 1);
    }

    fn limits() -> LimitsConfig {
        LimitsConfig {
            ballots_per_source_per_s: nz(1),
            ballots_burst_per_source: nz(10),
            ballots_per_prefix_per_s: nz(1),
            ballots_burst_per_prefix: nz(15),
            reads_per_source_per_s: nz(1),
            reads_burst_per_source: nz(3),
            max_in_flight: NonZeroUsize::new(2).unwrap(),
            shed_queue_depth: NonZeroUsize::new(100).unwrap(),
            penalty_tokens: nz(5),
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn ballots_and_reads_have_separate_budgets() {
        let a = Admission::new(&limits());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..3 {
            a.check_rate(Class::Read, ip).unwrap();
        }
        assert!(matches!(
            a.check_rate(Class::Read, ip),
            Err(Refused::RateLimited {
                scope: "source",
                ..
            })
        ));
        a.check_rate(Class::Ballot, ip).unwrap();
    }

    #[test]
    fn prefix_budget_binds_many_hosts_of_one_slash_24() {
        let a = Admission::new(&limits());
        let mut refused = None;
        for host in 1..=20u8 {
            let ip = IpAddr::from([198, 51, 100, host]);
            if let Err(e) = a.check_rate(Class::Ballot, ip) {
                refused = Some((host, e));
                break;
            }
        }
        let (host, e) = refused.expect("prefix limit never hit");
        assert_eq!(host, 16, "15-token prefix burst");
        assert!(matches!(
            e,
            Refused::RateLimited {
                scope: "prefix",
                ..
            }
        ));
        // Another /24 is unaffected.
        a.check_rate(Class::Ballot, "198.51.101.1".parse().unwrap())
            .unwrap();
    }

    #[test]
    fn penalize_spends_the_sources_ballot_budget() {
        let a = Admission::new(&limits());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        a.penalize(ip);
        a.penalize(ip);
        // 10 - 5 - 5 = 0 tokens left.
        assert!(matches!(
            a.check_rate(Class::Ballot, ip),
            Err(Refused::RateLimited { .. })
        ));
    }

    /// The reason of a 503, if that is what `r` is.
    fn shed_reason<T>(r: Result<T, Refused>) -> Option<&'static str> {
        match r {
            Err(Refused::Overloaded { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn in_flight_cap_and_queue_depth_shed_with_503() {
        let a = Admission::new(&limits());
        let p1 = a.enter(Class::Read, 0).unwrap();
        let _p2 = a.enter(Class::Ballot, 0).unwrap();
        assert_eq!(shed_reason(a.enter(Class::Read, 0)), Some("in_flight"));
        drop(p1);
        assert_eq!(
            shed_reason(a.enter(Class::Ballot, 100)),
            Some("queue_depth")
        );
        // Reads are not shed on the ballot queue.
        let _read = a.enter(Class::Read, 100).unwrap();
    }

    #[test]
    fn a_read_flood_cannot_take_the_slots_kept_for_ballots() {
        let a = Admission::new(&LimitsConfig {
            max_in_flight: NonZeroUsize::new(3).unwrap(),
            max_reads_in_flight: NonZeroUsize::new(2),
            ..limits()
        });
        let reads: Vec<_> = (0..2).map(|_| a.enter(Class::Read, 0).unwrap()).collect();
        for _ in 0..3 {
            assert_eq!(
                shed_reason(a.may_enter(Class::Read, 0)),
                Some("reads_in_flight")
            );
            assert_eq!(
                shed_reason(a.enter(Class::Read, 0)),
                Some("reads_in_flight")
            );
        }
        a.may_enter(Class::Ballot, 0).unwrap();
        let ballot = a.enter(Class::Ballot, 0).unwrap();
        // Now every slot is held: a ballot is refused too, on the whole cap.
        assert_eq!(shed_reason(a.enter(Class::Ballot, 0)), Some("in_flight"));
        drop(reads);
        drop(ballot);
        let _again: Vec<_> = (0..2).map(|_| a.enter(Class::Read, 0).unwrap()).collect();
    }
}
