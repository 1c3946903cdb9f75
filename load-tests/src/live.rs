//! What a run sees while it runs: per task and per second, requests by outcome and the
//! legitimate ballots' latency. It feeds the live progress line and the report's time
//! series. Counting is lock-free (atomics in a table sized before the clock), so a lane
//! pays a few relaxed adds per answer.
//!
//! A task's [`Stats`](crate::report::Stats) find their task's table through a tokio
//! task-local the runner sets around the task's future; a kind that spawns its own tasks
//! passes it on with [`scoped`]. Stats made outside a task's scope count in the final report
//! only, not in the series.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Seconds past the counted window a task's series still covers: answers in flight get the
/// kinds' grace (5 s), arriving voters their own deadline (30 s by default).
pub const TAIL_S: u64 = 60;
/// Longest series kept, in seconds: the longest run (3600 s) plus the tail. Later seconds
/// are counted in `late`, never stored, so no run can grow the table.
pub const MAX_SECONDS: u64 = crate::scenario::MAX_DURATION_S + TAIL_S;

/// Latency buckets: 8 per power of two from 1 µs, 32 octaves (to ~71 minutes). A bucket's
/// width is ~9% of its value, the precision of the per-second p99.
const SUB: u32 = 8;
const BUCKETS: usize = 32 * SUB as usize;

tokio::task_local! {
    static CURRENT: Option<Arc<LiveTask>>;
}

/// The table of the task this future runs for, if any.
pub fn current() -> Option<Arc<LiveTask>> {
    CURRENT.try_with(|c| c.clone()).ok().flatten()
}

/// Runs `f` in the scope of the current task's table (for futures a kind spawns).
pub fn scoped<F: Future>(f: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(current(), f)
}

/// Runs `f` counting into `task`'s table.
pub fn within<F: Future>(task: Option<Arc<LiveTask>>, f: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(task, f)
}

/// One second's counts.
#[derive(Default)]
struct Second {
    ok: AtomicU64,
    c4xx: AtomicU64,
    c429: AtomicU64,
    c5xx: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

/// A latency histogram in fixed log buckets.
struct LogHist(Box<[AtomicU32]>);

impl LogHist {
    fn new() -> LogHist {
        LogHist((0..BUCKETS).map(|_| AtomicU32::new(0)).collect())
    }

    fn record(&self, us: u64) {
        self.0[bucket(us)].fetch_add(1, Relaxed);
    }

    fn counts(&self) -> Vec<u32> {
        self.0.iter().map(|c| c.load(Relaxed)).collect()
    }
}

/// The bucket of `us` (at least 1).
fn bucket(us: u64) -> usize {
    let us = us.max(1);
    let octave = 63 - us.leading_zeros();
    // The SUB sub-buckets of the octave: the bits just below the leading one.
    let frac = if octave >= 3 {
        ((us >> (octave - 3)) & u64::from(SUB - 1)) as u32
    } else {
        ((us << (3 - octave)) & u64::from(SUB - 1)) as u32
    };
    ((octave * SUB + frac) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `b`, in µs.
fn bucket_top_us(b: usize) -> f64 {
    let octave = (b as u32 / SUB) as i32;
    let frac = (b as u32 % SUB) as f64;
    2f64.powi(octave) * (1.0 + (frac + 1.0) / f64::from(SUB))
}

/// The `q` quantile of bucket counts, in ms (a bucket's upper bound: never below the truth).
fn quantile_ms(counts: &[u32], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (b, &c) in counts.iter().enumerate() {
        seen += u64::from(c);
        if seen >= rank {
            return Some(bucket_top_us(b) / 1000.0);
        }
    }
    None
}

/// One task's live table.
pub struct LiveTask {
    pub name: String,
    /// Second 0 begins here (the counted window's start).
    start: Instant,
    seconds: Box<[Second]>,
    /// Legitimate ballots' latency per second, for tasks with voters only.
    legit: Option<Box<[LogHist]>>,
    /// ... and over the whole run, for the progress line.
    legit_all: Option<LogHist>,
    /// Events past the last second kept.
    late: AtomicU64,
}

/// What is counted: an answer's status, or a request that failed without one.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Status(u16),
    Error,
}

impl LiveTask {
    /// A table of `seconds` seconds from `start`; `legit`: the task has voters.
    pub fn new(name: &str, start: Instant, seconds: u64, legit: bool) -> LiveTask {
        let n = seconds.clamp(1, MAX_SECONDS) as usize;
        LiveTask {
            name: name.to_owned(),
            start,
            seconds: (0..n).map(|_| Second::default()).collect(),
            legit: legit.then(|| (0..n).map(|_| LogHist::new()).collect()),
            legit_all: legit.then(LogHist::new),
            late: AtomicU64::new(0),
        }
    }

    /// The second now falls in; `None` before the start (warm-up) or past the table.
    fn slot(&self) -> Option<usize> {
        let s = Instant::now().checked_duration_since(self.start)?.as_secs() as usize;
        if s >= self.seconds.len() {
            self.late.fetch_add(1, Relaxed);
            return None;
        }
        Some(s)
    }

    pub fn record(&self, o: Outcome) {
        let Some(s) = self.slot() else { return };
        let sec = &self.seconds[s];
        let c = match o {
            Outcome::Status(200..=299) => &sec.ok,
            Outcome::Status(429) => &sec.c429,
            Outcome::Status(400..=499) => &sec.c4xx,
            Outcome::Status(500..=599) => &sec.c5xx,
            Outcome::Status(_) => &sec.other,
            Outcome::Error => &sec.errors,
        };
        c.fetch_add(1, Relaxed);
    }

    /// A legitimate ballot accepted `latency` after it was due.
    pub fn legit(&self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(all) = &self.legit_all {
            all.record(us);
        }
        let (Some(per), Some(s)) = (&self.legit, self.slot()) else {
            return;
        };
        per[s].record(us);
    }

    /// The series up to `upto` seconds (the run's end), one point a second.
    pub fn series(&self, upto: u64) -> TaskSeries {
        let n = (upto as usize).min(self.seconds.len());
        let points = (0..n)
            .map(|i| {
                let s = &self.seconds[i];
                let p = Point {
                    t_s: i as u64,
                    ok: s.ok.load(Relaxed),
                    c4xx: s.c4xx.load(Relaxed),
                    c429: s.c429.load(Relaxed),
                    c5xx: s.c5xx.load(Relaxed),
                    other: s.other.load(Relaxed),
                    errors: s.errors.load(Relaxed),
                    requests: 0,
                    legit_p99_ms: self
                        .legit
                        .as_ref()
                        .and_then(|l| quantile_ms(&l[i].counts(), 0.99)),
                };
                Point {
                    requests: p.ok + p.c4xx + p.c429 + p.c5xx + p.other + p.errors,
                    ..p
                }
            })
            .collect();
        TaskSeries {
            task: self.name.clone(),
            points,
            late: self.late.load(Relaxed),
        }
    }

    /// For the progress line: requests in the last whole second, totals by class, and the
    /// legitimate p99 so far.
    pub fn progress(&self) -> Progress {
        let now = Instant::now()
            .checked_duration_since(self.start)
            .map_or(0, |d| d.as_secs() as usize)
            .min(self.seconds.len());
        let mut p = Progress::default();
        for (i, s) in self.seconds[..now.min(self.seconds.len())]
            .iter()
            .enumerate()
        {
            let ok = s.ok.load(Relaxed);
            let c4 = s.c4xx.load(Relaxed);
            let c429 = s.c429.load(Relaxed);
            let c5 = s.c5xx.load(Relaxed);
            let o = s.other.load(Relaxed);
            let e = s.errors.load(Relaxed);
            p.ok += ok;
            p.c4xx += c4;
            p.c429 += c429;
            p.c5xx += c5;
            p.errors += e;
            if i + 1 == now {
                p.last_s = ok + c4 + c429 + c5 + o + e;
            }
        }
        p.legit_p99_ms = self
            .legit_all
            .as_ref()
            .and_then(|h| quantile_ms(&h.counts(), 0.99));
        p
    }
}

/// A progress line's numbers.
#[derive(Debug, Default)]
pub struct Progress {
    pub last_s: u64,
    pub ok: u64,
    pub c4xx: u64,
    pub c429: u64,
    pub c5xx: u64,
    pub errors: u64,
    pub legit_p99_ms: Option<f64>,
}

/// One second of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Seconds from the counted window's start.
    pub t_s: u64,
    /// Requests that ended in this second: answered (any status) or failed. A request is
    /// counted once, when it ends; one still in flight at the end is not seen.
    pub requests: u64,
    pub ok: u64,
    /// 4xx other than 429.
    pub c4xx: u64,
    pub c429: u64,
    pub c5xx: u64,
    /// 1xx and 3xx.
    pub other: u64,
    /// Connections or requests that failed without an answer (connect, TLS, reset, ...).
    pub errors: u64,
    /// p99 of the legitimate ballots accepted in this second, from when each was due
    /// (tasks with voters; none accepted: absent).
    pub legit_p99_ms: Option<f64>,
}

/// One task's time series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSeries {
    pub task: String,
    pub points: Vec<Point>,
    /// Events past the last second kept (never stored).
    pub late: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_rise_with_latency_and_bound_it_from_above() {
        let mut last = 0;
        for us in [1u64, 2, 3, 7, 8, 9, 100, 1000, 1500, 10_000, 3_600_000_000] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(bucket_top_us(b) >= us as f64, "{us}: {}", bucket_top_us(b));
            assert!(bucket_top_us(b) <= us as f64 * 1.26 + 1.0, "{us}");
            last = b;
        }
    }

    #[test]
    fn a_second_counts_its_classes_and_its_legit_p99() {
        let t = LiveTask::new("v", Instant::now(), 5, true);
        for _ in 0..98 {
            t.record(Outcome::Status(201));
        }
        // 99 of 100 at 2 ms: the p99 is 2 ms (one bucket up at most), not the outlier.
        for _ in 0..99 {
            t.legit(Duration::from_millis(2));
        }
        t.legit(Duration::from_millis(300));
        t.record(Outcome::Status(429));
        t.record(Outcome::Status(404));
        t.record(Outcome::Status(503));
        t.record(Outcome::Error);
        let s = t.series(5);
        assert_eq!(s.points.len(), 5);
        let p = &s.points[0];
        assert_eq!((p.ok, p.c429, p.c4xx, p.c5xx, p.errors), (98, 1, 1, 1, 1));
        assert_eq!(p.requests, 102);
        let p99 = p.legit_p99_ms.unwrap();
        assert!((2.0..2.6).contains(&p99), "{p99}");
        assert_eq!(s.points[1].requests, 0);
        assert!(s.points[1].legit_p99_ms.is_none());
    }

    #[test]
    fn the_table_is_bounded_whatever_the_run_asks() {
        let t = LiveTask::new("v", Instant::now(), u64::MAX, false);
        assert_eq!(t.seconds.len() as u64, MAX_SECONDS);
        let past = LiveTask::new("v", Instant::now() - Duration::from_secs(10), 2, false);
        past.record(Outcome::Error);
        assert_eq!(past.series(100).points.len(), 2);
        assert_eq!(past.series(100).late, 1);
    }
}
