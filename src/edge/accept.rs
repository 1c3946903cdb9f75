//! L1, the cheapest layer: decides at accept, before any TLS work, whether a connection may
//! live. In cost order: the penalty box (sources that ignored 429s), deny/allow lists, per
//! source (IPv4 /32, IPv6 /64) and per prefix (IPv4 /24, IPv6 /48) a cap on open connections
//! and a token bucket on new ones, and last a slot in the connection table — which, when
//! full, reclaims its least valuable connections for the newcomer ([`super::conns`]).
//!
//! The per-source (and per-prefix) table is keyed by what the network chooses, so it is bounded:
//! `max_tracked_sources` entries at most. When it is full and a new source arrives, the
//! oldest quarter of the *idle* entries (no open connection) is evicted in one sweep, which
//! keeps eviction O(1) amortised. Entries with open connections are never evicted — they
//! are at most `max_connections`, which the config requires to be below the cap — so the
//! per-source connection cap cannot be escaped by churning the table. Evicting an idle
//! source forgets its rate history: it gets a fresh bucket if it comes back. Oldest first
//! makes that the sources least likely to still be hammering.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::conns::{ConnTable, Held, Reclaimed};
use super::penalty::PenaltyBox;
use super::source::{canonical, in_any, prefix_key, source_key};
use crate::config::LimitsConfig;

/// Why L1 closed a connection. The `reason` strings are metric labels: keep them stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("source is in the penalty box (it kept sending after 429s)")]
    PenaltyBox,
    #[error("source is in the deny list")]
    Denied,
    #[error("source is not in the allow list")]
    NotAllowed,
    #[error("global connection cap reached")]
    TooManyConnections,
    #[error("source wastes connections and the table is full")]
    WasterWhileFull,
    #[error("source has too many open connections")]
    TooManyFromSource,
    #[error("source opens connections too fast")]
    SourceRate,
    #[error("source table full of live sources")]
    SourceTableFull,
    #[error("prefix has too many open connections")]
    TooManyFromPrefix,
    #[error("prefix opens connections too fast")]
    PrefixRate,
    #[error("prefix table full of live prefixes")]
    PrefixTableFull,
}

impl Refusal {
    /// Stable metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PenaltyBox => "penalty_box",
            Refusal::Denied => "denied",
            Refusal::NotAllowed => "not_allowed",
            Refusal::TooManyConnections => "max_connections",
            Refusal::WasterWhileFull => "waster_table_full",
            Refusal::TooManyFromSource => "max_connections_per_source",
            Refusal::SourceRate => "new_connection_rate",
            Refusal::SourceTableFull => "source_table_full",
            Refusal::TooManyFromPrefix => "max_connections_per_prefix",
            Refusal::PrefixRate => "new_connection_rate_prefix",
            Refusal::PrefixTableFull => "prefix_table_full",
        }
    }
}

/// One source's state.
#[derive(Debug, Clone)]
struct SourceState {
    open: u32,
    /// Token bucket for new connections.
    tokens: f64,
    refilled_at: Instant,
    last_seen: Instant,
    /// Connections of this source the server ended for holding a slot without using it
    /// (reclaimed or timed out silent, mid-hello, mid-request or idle), counted since
    /// `wasted_at` minus the memory; see [`SourceTable::is_waster`].
    wasted: u32,
    wasted_at: Instant,
}

/// The bounded per-source table. Plain `HashMap` under one mutex: an accept touches it
/// twice (open, close) for a few hundred nanoseconds, far below a handshake's cost.
#[derive(Debug)]
pub struct SourceTable {
    map: HashMap<IpNet, SourceState>,
    cap: usize,
    max_open: u32,
    rate_per_s: f64,
    burst: f64,
    /// What this table's refusals say: (too many open, too fast, table full).
    refusals: (Refusal, Refusal, Refusal),
}

impl SourceTable {
    pub fn new(cap: usize, max_open: u32, rate_per_s: u32, burst: u32) -> SourceTable {
        SourceTable {
            map: HashMap::new(),
            cap: cap.max(1),
            max_open,
            rate_per_s: f64::from(rate_per_s),
            burst: f64::from(burst.max(1)),
            refusals: (
                Refusal::TooManyFromSource,
                Refusal::SourceRate,
                Refusal::SourceTableFull,
            ),
        }
    }

    /// The same table for prefixes: its refusals name the prefix.
    pub fn for_prefixes(mut self) -> SourceTable {
        self.refusals = (
            Refusal::TooManyFromPrefix,
            Refusal::PrefixRate,
            Refusal::PrefixTableFull,
        );
        self
    }

    /// Sources tracked now; never above the cap.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A new connection from `key` at `now`: counts it open, or says why not.
    pub fn open(&mut self, key: IpNet, now: Instant) -> Result<(), Refusal> {
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            self.evict_idle();
            if self.map.len() >= self.cap {
                return Err(self.refusals.2);
            }
        }
        let burst = self.burst;
        let state = self.map.entry(key).or_insert(SourceState {
            open: 0,
            tokens: burst,
            refilled_at: now,
            last_seen: now,
            wasted: 0,
            wasted_at: now,
        });
        state.last_seen = now;
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate_per_s).min(burst);
        state.refilled_at = now;
        if state.open >= self.max_open {
            return Err(self.refusals.0);
        }
        if state.tokens < 1.0 {
            return Err(self.refusals.1);
        }
        state.tokens -= 1.0;
        state.open += 1;
        Ok(())
    }

    /// A connection from `key` closed.
    pub fn close(&mut self, key: IpNet) {
        if let Some(state) = self.map.get_mut(&key) {
            state.open = state.open.saturating_sub(1);
        }
    }

    /// The server ended a connection of `key` for wasting its slot. Counts are kept while
    /// the source is tracked and forgotten `memory` after the last one.
    pub fn waste(&mut self, key: IpNet, now: Instant, memory: Duration) {
        if let Some(state) = self.map.get_mut(&key) {
            if now.saturating_duration_since(state.wasted_at) > memory {
                state.wasted = 0;
            }
            state.wasted = state.wasted.saturating_add(1);
            state.wasted_at = now;
        }
    }

    /// Whether `key` has wasted at least `strikes` connections, the last within `memory`.
    pub fn is_waster(&self, key: &IpNet, now: Instant, strikes: u32, memory: Duration) -> bool {
        self.map.get(key).is_some_and(|s| {
            s.wasted >= strikes && now.saturating_duration_since(s.wasted_at) <= memory
        })
    }

    /// Open connections of `key` (0 when untracked).
    pub fn open_count(&self, key: &IpNet) -> u32 {
        self.map.get(key).map_or(0, |s| s.open)
    }

    /// Whether `key` is tracked.
    pub fn contains(&self, key: &IpNet) -> bool {
        self.map.contains_key(key)
    }

    /// Evicts the oldest quarter (at least one) of the idle entries.
    fn evict_idle(&mut self) {
        let mut idle: Vec<(Instant, IpNet)> = self
            .map
            .iter()
            .filter(|(_, s)| s.open == 0)
            .map(|(k, s)| (s.last_seen, *k))
            .collect();
        if idle.is_empty() {
            return;
        }
        let n = (self.cap / 4).clamp(1, idle.len());
        if n < idle.len() {
            idle.select_nth_unstable(n - 1);
        }
        for (_, key) in &idle[..n] {
            self.map.remove(key);
        }
        metrics::counter!("urna_l1_sources_evicted_total").increment(n as u64);
    }
}

/// L1's decision point, shared by every listener.
#[derive(Debug)]
pub struct AcceptGate {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
    /// Every connection held, by phase; reclaims for newcomers when full.
    pub table: Arc<ConnTable>,
    sources: Mutex<SourceTable>,
    prefixes: Mutex<SourceTable>,
    /// Sources that kept sending after 429s (fed by L4).
    pub penalty: PenaltyBox,
    /// How many wasted connections make a source a waster, and for how long it is one.
    waster_strikes: u32,
    waster_memory: Duration,
}

/// A live connection's claim on L1: dropping it releases its table slot and its source's
/// and prefix's counts.
#[derive(Debug)]
pub struct ConnTicket {
    gate: Arc<AcceptGate>,
    source: IpNet,
    prefix: IpNet,
    /// The connection's slot and shared state.
    pub conn: Held,
}

impl Drop for ConnTicket {
    fn drop(&mut self) {
        lock(&self.gate.sources).close(self.source);
        lock(&self.gate.prefixes).close(self.prefix);
        metrics::gauge!("urna_connections_open").set(self.gate.table.open() as f64);
    }
}

fn lock(table: &Mutex<SourceTable>) -> std::sync::MutexGuard<'_, SourceTable> {
    // A panic while holding this lock cannot leave the table inconsistent beyond one
    // counter; keep serving rather than poison every later accept.
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl AcceptGate {
    pub fn new(limits: &LimitsConfig) -> Arc<AcceptGate> {
        let cap = limits.max_tracked_sources.get();
        Arc::new(AcceptGate {
            deny: limits.deny.clone(),
            allow: limits.allow.clone(),
            table: ConnTable::new(
                limits.max_connections.get(),
                limits.reclaim_batch.get(),
                limits.keep_alive_idle_min_ms.min(limits.keep_alive_idle_ms),
                limits.new_connection_grace_ms,
            ),
            sources: Mutex::new(SourceTable::new(
                cap,
                limits.max_connections_per_source.get(),
                limits.new_connections_per_source_per_s.get(),
                limits.new_connections_burst.get(),
            )),
            prefixes: Mutex::new(
                SourceTable::new(
                    cap,
                    limits.max_connections_per_prefix.get(),
                    limits.new_connections_per_prefix_per_s.get(),
                    limits.new_connections_burst_per_prefix.get(),
                )
                .for_prefixes(),
            ),
            penalty: PenaltyBox::new(limits),
            waster_strikes: limits.waster_strikes.get(),
            waster_memory: Duration::from_millis(limits.waster_memory_ms),
        })
    }

    /// The server ended a connection of `ip` for holding its slot without using it.
    pub fn wasted(&self, ip: IpAddr) {
        let now = Instant::now();
        lock(&self.sources).waste(source_key(canonical(ip)), now, self.waster_memory);
        metrics::counter!("urna_l1_wasted_connections_total").increment(1);
    }

    /// Whether `ip`'s source has lately made a habit of wasting connections (holding them
    /// silent, stalled or idle until the server ended them): its handshakes wait behind
    /// everyone else's. A voter arrives once, from an address of its own, and is never one.
    pub fn is_waster(&self, ip: IpAddr) -> bool {
        lock(&self.sources).is_waster(
            &source_key(canonical(ip)),
            Instant::now(),
            self.waster_strikes,
            self.waster_memory,
        )
    }

    /// The refusals that need nothing but the address and the table's fill (penalty box,
    /// deny, allow, a waster while the table is full): the accept loop asks them itself,
    /// before a task or an event registration is spent on a connection it will reset.
    pub fn refuse_at_once(&self, ip: IpAddr, now: Instant) -> Option<Refusal> {
        let ip = canonical(ip);
        if self.penalty.is_boxed(ip, now) {
            return Some(Refusal::PenaltyBox);
        }
        if in_any(&self.deny, ip) {
            return Some(Refusal::Denied);
        }
        if !self.allow.is_empty() && !in_any(&self.allow, ip) {
            return Some(Refusal::NotAllowed);
        }
        // A full table makes room for a newcomer by ending someone else's connection. A
        // waster (a source whose own connections the server keeps ending unused) would
        // take that room only to waste it again: a botnet that holds connections and
        // reconnects when cut would churn the table as fast as it can connect, each round
        // ending one of its own held connections or a voter's idle one. So while the table
        // is full its new connections are reset at accept, which costs the server an
        // accept and a close; with room in the table they are served, wasters last at the
        // handshake. Per source (IPv4 /32, IPv6 /64) and forgotten after
        // `waster_memory_ms`, like the penalty box.
        if self.table.open() >= self.table.capacity()
            && lock(&self.sources).is_waster(
                &source_key(ip),
                now,
                self.waster_strikes,
                self.waster_memory,
            )
        {
            return Some(Refusal::WasterWhileFull);
        }
        None
    }

    /// Decides on a connection from `ip` (the real client address: after PROXY v2 when the
    /// peer is a trusted proxy).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnTicket, Refusal> {
        let ip = canonical(ip);
        let now = Instant::now();
        if let Some(r) = self.refuse_at_once(ip, now) {
            return Err(r);
        }
        let (source, prefix) = (source_key(ip), prefix_key(ip));
        lock(&self.sources).open(source, now)?;
        if let Err(r) = lock(&self.prefixes).open(prefix, now) {
            lock(&self.sources).close(source);
            return Err(r);
        }
        let (held, reclaimed) = self.table.insert(ip);
        self.count_reclaimed(&reclaimed);
        let Some(conn) = held else {
            lock(&self.sources).close(source);
            lock(&self.prefixes).close(prefix);
            return Err(Refusal::TooManyConnections);
        };
        metrics::gauge!("urna_connections_open").set(self.table.open() as f64);
        Ok(ConnTicket {
            gate: self.clone(),
            source,
            prefix,
            conn,
        })
    }

    /// Counts connections reclaimed for newcomers, and remembers the wasters among them.
    pub fn count_reclaimed(&self, reclaimed: &Reclaimed) {
        for r in reclaimed {
            metrics::counter!("urna_connections_reclaimed_total", "reason" => r.phase.reclaim_reason())
                .increment(1);
            if r.wasted() {
                self.wasted(r.client);
            }
        }
    }

    /// Sources tracked now.
    pub fn tracked_sources(&self) -> usize {
        lock(&self.sources).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::{NonZeroU32, NonZeroUsize};
    use std::time::Duration;

    fn key(i: u32) -> IpNet {
        source_key(IpAddr::V4(i.into()))
    }

    #[test]
    fn source_table_never_grows_past_its_cap() {
        let mut t = SourceTable::new(8, 4, 100, 100);
        let start = Instant::now();
        for i in 0..1000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            t.open(key(i), now).unwrap();
            t.close(key(i));
            assert!(t.len() <= 8, "len {} at {i}", t.len());
        }
    }

    #[test]
    fn eviction_at_cap_takes_the_oldest_idle_source_and_spares_live_ones() {
        let mut t = SourceTable::new(4, 4, 100, 100);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // 1 and 2 stay open; 3 then 4 close (3 is the oldest idle).
        t.open(key(1), at(0)).unwrap();
        t.open(key(2), at(1)).unwrap();
        t.open(key(3), at(2)).unwrap();
        t.close(key(3));
        t.open(key(4), at(3)).unwrap();
        t.close(key(4));
        t.open(key(5), at(4)).unwrap();
        assert_eq!(t.len(), 4);
        assert!(!t.contains(&key(3)), "oldest idle source evicted");
        assert!(t.contains(&key(4)));
        assert_eq!(t.open_count(&key(1)), 1);
        assert_eq!(t.open_count(&key(2)), 1);
    }

    #[test]
    fn full_table_of_live_sources_refuses_new_ones() {
        let mut t = SourceTable::new(2, 4, 100, 100);
        let now = Instant::now();
        t.open(key(1), now).unwrap();
        t.open(key(2), now).unwrap();
        assert_eq!(t.open(key(3), now), Err(Refusal::SourceTableFull));
        // A tracked source still gets in.
        t.open(key(1), now).unwrap();
        t.close(key(2));
        t.open(key(3), now).unwrap();
        assert!(!t.contains(&key(2)));
    }

    #[test]
    fn per_source_open_connections_are_capped() {
        let mut t = SourceTable::new(10, 2, 100, 100);
        let now = Instant::now();
        t.open(key(1), now).unwrap();
        t.open(key(1), now).unwrap();
        assert_eq!(t.open(key(1), now), Err(Refusal::TooManyFromSource));
        t.close(key(1));
        t.open(key(1), now).unwrap();
    }

    #[test]
    fn per_source_new_connection_rate_refills_over_time() {
        let mut t = SourceTable::new(10, 100, 2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            t.open(key(1), t0).unwrap();
        }
        assert_eq!(t.open(key(1), t0), Err(Refusal::SourceRate));
        // 2/s: one token after 500 ms.
        t.open(key(1), t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(
            t.open(key(1), t0 + Duration::from_millis(500)),
            Err(Refusal::SourceRate)
        );
    }

    fn limits() -> LimitsConfig {
        LimitsConfig {
            deny: vec!["192.0.2.0/24".parse().unwrap()],
            allow: vec![],
            max_connections: NonZeroUsize::new(2).unwrap(),
            max_connections_per_source: NonZeroU32::new(10).unwrap(),
            max_tracked_sources: NonZeroUsize::new(10).unwrap(),
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn prefix_caps_bind_many_sources_of_one_slash_24() {
        let mut l = limits();
        l.max_connections = NonZeroUsize::new(100).unwrap();
        l.max_tracked_sources = NonZeroUsize::new(1000).unwrap();
        l.max_connections_per_prefix = NonZeroU32::new(3).unwrap();
        let gate = AcceptGate::new(&l);
        let held: Vec<_> = (1..=3)
            .map(|h| gate.admit(IpAddr::from([198, 51, 100, h])).unwrap())
            .collect();
        assert_eq!(
            gate.admit("198.51.100.4".parse().unwrap()).unwrap_err(),
            Refusal::TooManyFromPrefix
        );
        gate.admit("198.51.101.4".parse().unwrap()).unwrap();
        drop(held);
        gate.admit("198.51.100.4".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_boxed_source_is_refused_at_accept_and_its_neighbour_is_not() {
        let gate = AcceptGate::new(&limits());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let now = Instant::now();
        while gate.penalty.strike(ip, now) != super::super::penalty::Strike::Boxed {}
        assert_eq!(gate.admit(ip).unwrap_err(), Refusal::PenaltyBox);
        gate.admit("198.51.100.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_waster_is_reset_at_accept_while_the_table_is_full_and_served_when_there_is_room() {
        let gate = AcceptGate::new(&limits());
        let waster: IpAddr = "198.51.100.9".parse().unwrap();
        let first = gate.admit(waster).unwrap();
        for _ in 0..limits().waster_strikes.get() {
            gate.wasted(waster);
        }
        drop(first);
        let a = gate.admit("198.51.100.1".parse().unwrap()).unwrap();
        let b = gate.admit("203.0.113.1".parse().unwrap()).unwrap();
        let now = Instant::now();
        // Full: the waster would end someone else's connection to waste another slot.
        assert_eq!(
            gate.refuse_at_once(waster, now),
            Some(Refusal::WasterWhileFull)
        );
        assert_eq!(gate.admit(waster).unwrap_err(), Refusal::WasterWhileFull);
        // Anyone else still reclaims a slot (a silent one here), and its neighbour in the
        // same /24 is not touched by the waster's record.
        let c = gate.admit("198.51.100.10".parse().unwrap()).unwrap();
        assert!(
            a.conn.phase().is_none(),
            "a's silent connection was reclaimed"
        );
        // Once its record is older than waster_memory_ms it is no waster any more.
        let later = now + Duration::from_millis(limits().waster_memory_ms + 1);
        assert_eq!(gate.refuse_at_once(waster, later), None);
        // With room in the table a waster is served (its handshake waits behind others').
        drop((b, c));
        gate.admit(waster).unwrap();
    }

    #[test]
    fn gate_applies_deny_allow_and_global_cap() {
        let gate = AcceptGate::new(&limits());
        assert_eq!(
            gate.admit("192.0.2.9".parse().unwrap()).unwrap_err(),
            Refusal::Denied
        );
        // Two connections with requests being processed fill the table: the third is
        // refused, since none can be reclaimed.
        let a = gate.admit("198.51.100.1".parse().unwrap()).unwrap();
        a.conn.request_started();
        let b = gate.admit("198.51.100.2".parse().unwrap()).unwrap();
        b.conn.request_started();
        assert_eq!(
            gate.admit("198.51.100.3".parse().unwrap()).unwrap_err(),
            Refusal::TooManyConnections
        );
        drop(a);
        let _c = gate.admit("198.51.100.3".parse().unwrap()).unwrap();
        // An idle one is reclaimed for a newcomer instead.
        b.conn.request_done();
        let _d = gate.admit("198.51.100.4".parse().unwrap()).unwrap();
        assert!(b.conn.phase().is_none(), "b gave its slot up");

        let mut only = limits();
        only.allow = vec!["10.1.0.0/16".parse().unwrap()];
        let gate = AcceptGate::new(&only);
        assert_eq!(
            gate.admit("10.2.0.1".parse().unwrap()).unwrap_err(),
            Refusal::NotAllowed
        );
        gate.admit("10.1.0.1".parse().unwrap()).unwrap();
    }
}
