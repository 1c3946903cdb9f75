//! Counting what came back: answers by status and error code, latency percentiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one worker saw; merged per task at the end.
pub struct Stats {
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Error answers by their `{"error": code}`.
    pub codes: BTreeMap<String, u64>,
    /// Connections opened (or handshakes completed, for TLS churn).
    pub connects: u64,
    /// Connections that could not be opened, or broke mid-request.
    pub io_errors: u64,
    /// Connections the server closed on us (slowloris, stalled handshakes).
    pub closed_by_server: u64,
    /// Latency of 2xx answers, in µs.
    pub ok_latency_us: Histogram<u64>,
    /// How long the server took to close a hostile connection, in µs.
    pub close_after_us: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            statuses: BTreeMap::new(),
            codes: BTreeMap::new(),
            connects: 0,
            io_errors: 0,
            closed_by_server: 0,
            // 1 µs .. 1 hour at 3 significant digits: fixed-size, whatever the run.
            ok_latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
            close_after_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
        }
    }
}

impl Stats {
    pub fn answer(&mut self, status: u16, body: &[u8], latency: Duration) {
        *self.statuses.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            self.ok_latency_us
                .saturating_record(latency.as_micros().max(1) as u64);
        } else if let Some(code) = error_code(body) {
            *self.codes.entry(code).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: Stats) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        self.connects += other.connects;
        self.io_errors += other.io_errors;
        self.closed_by_server += other.closed_by_server;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.ok_latency_us.add(&other.ok_latency_us);
        let _ = self.close_after_us.add(&other.close_after_us);
    }
}

fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        error: String,
    }
    serde_json::from_slice::<E>(body).ok().map(|e| e.error)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
    }
}

/// One task's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub name: String,
    pub kind: &'static str,
    pub elapsed_s: f64,
    pub answers: u64,
    pub answers_per_s: f64,
    /// 2xx answers per second (for voters: durable ballots per second).
    pub ok_per_s: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub codes: BTreeMap<String, u64>,
    pub connects: u64,
    pub io_errors: u64,
    pub closed_by_server: u64,
    pub ok_latency: Option<Percentiles>,
    pub close_after: Option<Percentiles>,
}

impl TaskReport {
    pub fn new(name: &str, kind: &'static str, elapsed: Duration, s: &Stats) -> TaskReport {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let answers: u64 = s.statuses.values().sum();
        let ok: u64 = s
            .statuses
            .iter()
            .filter(|(k, _)| (200..300).contains(*k))
            .map(|(_, v)| v)
            .sum();
        TaskReport {
            name: name.to_owned(),
            kind,
            elapsed_s: secs,
            answers,
            answers_per_s: answers as f64 / secs,
            ok_per_s: ok as f64 / secs,
            statuses: s.statuses.clone(),
            codes: s.codes.clone(),
            connects: s.connects,
            io_errors: s.io_errors,
            closed_by_server: s.closed_by_server,
            ok_latency: Percentiles::of(&s.ok_latency_us),
            close_after: Percentiles::of(&s.close_after_us),
        }
    }

    /// How many answers had this status.
    pub fn status(&self, code: u16) -> u64 {
        self.statuses.get(&code).copied().unwrap_or(0)
    }

    /// How many error answers carried this code.
    pub fn code(&self, code: &str) -> u64 {
        self.codes.get(code).copied().unwrap_or(0)
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tasks: Vec<TaskReport>,
}

impl Report {
    pub fn task(&self, name: &str) -> Option<&TaskReport> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// A table for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for t in &self.tasks {
            let _ = writeln!(
                out,
                "{} ({}): {} answers in {:.1} s = {:.0}/s, 2xx {:.0}/s; connects {}, io errors {}, closed by server {}",
                t.name, t.kind, t.answers, t.elapsed_s, t.answers_per_s, t.ok_per_s, t.connects, t.io_errors, t.closed_by_server
            );
            if !t.statuses.is_empty() {
                let _ = writeln!(out, "  statuses: {:?}", t.statuses);
            }
            if !t.codes.is_empty() {
                let _ = writeln!(out, "  codes: {:?}", t.codes);
            }
            if let Some(p) = &t.ok_latency {
                let _ = writeln!(
                    out,
                    "  2xx latency ms: p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} (n={})",
                    p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.count
                );
            }
            if let Some(p) = &t.close_after {
                let _ = writeln!(
                    out,
                    "  closed by server after ms: p50 {:.0} p99 {:.0} max {:.0} (n={})",
                    p.p50_ms, p.p99_ms, p.max_ms, p.count
                );
            }
        }
        out
    }
}
