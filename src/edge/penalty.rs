//! The penalty box (after HAProxy's stick tables with `silent-drop`): a source that keeps
//! sending after it has been told 429 + Retry-After is closed and refused at accept for a
//! cool-down. Answering each of its requests with a 429 forever is the most a limiter can
//! cost; in the box, a request costs an accept and a close instead of a TLS record and an
//! HTTP answer.
//!
//! Per source only (IPv4 /32, IPv6 /64), never per prefix, with a short cool-down: one
//! hostile neighbour cannot lock a prefix of real voters out. A voter who honours
//! Retry-After collects a handful of strikes at most, far below the threshold.
//!
//! The table is keyed by what the network chooses, so it is bounded: past
//! `max_penalized_sources`, expired entries are dropped first, then the oldest quarter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::source::source_key;
use crate::config::LimitsConfig;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Refusals counted in the current window.
    strikes: u32,
    window_start: Instant,
    /// Boxed until then, if boxed.
    boxed_until: Option<Instant>,
}

/// What a strike did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Counted; the source is not boxed.
    Counted,
    /// This strike put the source in the box: close its connection.
    Boxed,
}

#[derive(Debug)]
pub struct PenaltyBox {
    map: Mutex<HashMap<IpNet, Entry>>,
    cap: usize,
    strikes: u32,
    window: Duration,
    cooldown: Duration,
    /// Bumped each time a source enters the box, so the accept loops know when the
    /// kernel's copy of the box ([`super::synfilter`]) is out of date.
    generation: AtomicU64,
}

impl PenaltyBox {
    pub fn new(l: &LimitsConfig) -> PenaltyBox {
        PenaltyBox {
            map: Mutex::new(HashMap::new()),
            cap: l.max_penalized_sources.get(),
            strikes: l.penalty_box_strikes.get(),
            window: Duration::from_millis(l.penalty_box_window_ms),
            cooldown: Duration::from_millis(l.penalty_box_cooldown_ms),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpNet, Entry>> {
        // A panic under the lock leaves at worst one count off; keep serving.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip`'s source is boxed at `now`.
    pub fn is_boxed(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock()
            .get(&source_key(ip))
            .and_then(|e| e.boxed_until)
            .is_some_and(|until| now < until)
    }

    /// `ip` was just refused with a 429.
    pub fn strike(&self, ip: IpAddr, now: Instant) -> Strike {
        let key = source_key(ip);
        let mut map = self.lock();
        if !map.contains_key(&key) && map.len() >= self.cap {
            self.evict(&mut map, now);
        }
        let entry = map.entry(key).or_insert(Entry {
            strikes: 0,
            window_start: now,
            boxed_until: None,
        });
        if let Some(until) = entry.boxed_until {
            if now < until {
                // Still boxed (a request on a connection that predates the box).
                return Strike::Boxed;
            }
            entry.boxed_until = None;
            entry.strikes = 0;
            entry.window_start = now;
        }
        if now.saturating_duration_since(entry.window_start) > self.window {
            entry.strikes = 0;
            entry.window_start = now;
        }
        entry.strikes += 1;
        if entry.strikes >= self.strikes {
            entry.boxed_until = Some(now + self.cooldown);
            self.generation.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("urna_penalty_box_entered_total").increment(1);
            Strike::Boxed
        } else {
            Strike::Counted
        }
    }

    /// Changes each time a source enters the box.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The sources boxed at `now`, at most `max` of them, the latest boxed first (they stay
    /// boxed longest, so the kernel's copy changes least often), and the earliest instant
    /// one of them leaves the box.
    pub fn boxed(&self, now: Instant, max: usize) -> (Vec<IpNet>, Option<Instant>) {
        let map = self.lock();
        let mut boxed: Vec<(Instant, IpNet)> = map
            .iter()
            .filter_map(|(k, e)| e.boxed_until.filter(|u| now < *u).map(|u| (u, *k)))
            .collect();
        drop(map);
        if boxed.len() > max {
            boxed.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
            boxed.truncate(max);
        }
        let first_out = boxed.iter().map(|(u, _)| *u).min();
        (boxed.into_iter().map(|(_, k)| k).collect(), first_out)
    }

    /// Drops what no longer matters (windows past, boxes expired); if that frees nothing,
    /// a quarter of the table: sources not boxed first, oldest first.
    fn evict(&self, map: &mut HashMap<IpNet, Entry>, now: Instant) {
        let live = |e: &Entry| match e.boxed_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(e.window_start) <= self.window,
        };
        map.retain(|_, e| live(e));
        if map.len() < self.cap {
            return;
        }
        // Sources merely counting strikes go before boxed ones, oldest first.
        let mut ages: Vec<(bool, Instant, IpNet)> = map
            .iter()
            .map(|(k, e)| (e.boxed_until.is_some(), e.window_start, *k))
            .collect();
        let n = (self.cap / 4).clamp(1, ages.len());
        ages.select_nth_unstable(n - 1);
        for (_, _, k) in &ages[..n] {
            map.remove(k);
        }
    }

    /// Drops expired entries and publishes the gauge. Run periodically.
    pub fn sweep(&self, now: Instant) {
        let mut map = self.lock();
        map.retain(|_, e| match e.boxed_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(e.window_start) <= self.window,
        });
        let boxed = map.values().filter(|e| e.boxed_until.is_some()).count();
        metrics::gauge!("urna_penalty_box_sources").set(boxed as f64);
        metrics::gauge!("urna_penalty_box_tracked").set(map.len() as f64);
    }

    /// Sources tracked now (never above the cap).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::{NonZeroU32, NonZeroUsize};

    fn boxy(cap: usize) -> PenaltyBox {
        PenaltyBox::new(&LimitsConfig {
            penalty_box_strikes: NonZeroU32::new(3).unwrap(),
            penalty_box_window_ms: 1_000,
            penalty_box_cooldown_ms: 5_000,
            max_penalized_sources: NonZeroUsize::new(cap).unwrap(),
            ..LimitsConfig::default()
        })
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(i.into())
    }

    #[test]
    fn n_refusals_within_the_window_box_the_source_for_the_cooldown() {
        let b = boxy(16);
        let t0 = Instant::now();
        assert_eq!(b.strike(ip(1), t0), Strike::Counted);
        assert_eq!(b.strike(ip(1), t0), Strike::Counted);
        assert!(!b.is_boxed(ip(1), t0));
        assert_eq!(b.strike(ip(1), t0), Strike::Boxed);
        assert!(b.is_boxed(ip(1), t0 + Duration::from_millis(4_999)));
        assert!(!b.is_boxed(ip(1), t0 + Duration::from_millis(5_000)));
        // The neighbour in the same /24 is untouched.
        assert!(!b.is_boxed(ip(2), t0));
    }

    #[test]
    fn strikes_spread_wider_than_the_window_never_box() {
        let b = boxy(16);
        let t0 = Instant::now();
        for i in 0..20 {
            let at = t0 + Duration::from_millis(600 * i);
            assert_eq!(b.strike(ip(1), at), Strike::Counted, "strike {i}");
        }
    }

    #[test]
    fn the_table_never_grows_past_its_cap_and_keeps_boxed_sources_first() {
        let b = boxy(8);
        let t0 = Instant::now();
        for _ in 0..3 {
            b.strike(ip(0), t0);
        }
        assert!(b.is_boxed(ip(0), t0));
        // Many one-strike sources, after the boxed one's window has passed.
        let later = t0 + Duration::from_millis(2_000);
        for i in 1..1_000 {
            b.strike(ip(i), later);
            assert!(b.len() <= 8);
        }
        assert!(
            b.is_boxed(ip(0), later),
            "a live box outlasts expired strikes"
        );
    }

    #[test]
    fn boxed_lists_live_boxes_latest_first_and_when_the_first_leaves() {
        let b = boxy(16);
        let t0 = Instant::now();
        assert_eq!(b.boxed(t0, 8), (vec![], None));
        let g0 = b.generation();
        for (i, at) in [(1, 0u64), (2, 100), (3, 200)] {
            for _ in 0..3 {
                b.strike(ip(i), t0 + Duration::from_millis(at));
            }
        }
        b.strike(ip(9), t0); // counting, not boxed
        assert_eq!(b.generation(), g0 + 3, "one change per source boxed");
        let now = t0 + Duration::from_millis(300);
        let (two, first_out) = b.boxed(now, 2);
        assert_eq!(two, vec![source_key(ip(3)), source_key(ip(2))]);
        assert_eq!(first_out, Some(t0 + Duration::from_millis(5_100)));
        let (all, first_out) = b.boxed(now, 8);
        assert_eq!(all.len(), 3);
        assert_eq!(first_out, Some(t0 + Duration::from_millis(5_000)));
        // Past the first cool-down, the first source is out.
        let (left, _) = b.boxed(t0 + Duration::from_millis(5_050), 8);
        assert!(!left.contains(&source_key(ip(1))) && left.len() == 2);
    }
}
