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
    /// Why connections or requests failed: `connect`, `tls`, `reset`, `timeout`, ...
    pub failures: BTreeMap<String, u64>,
    /// TLS handshakes begun (handshake floods; others count only completions).
    pub handshakes_attempted: u64,
    /// Time from the TCP connect to the end of the TLS handshake, in µs. Created on first
    /// use: most tasks never record one, and a histogram is ~190 KB.
    pub handshake_us: Option<Histogram<u64>>,
    /// Answer bytes read (slow readers).
    pub bytes_read: u64,
    /// Open-loop connections not opened because the task's `connections` were all busy.
    pub skipped_at_cap: u64,
    /// Each legitimate ballot's outcome (`arrivals` and `voters` tasks): one per arriving
    /// voter, or one per pre-signed ballot a `voters` lane sent.
    pub arrivals: Option<ArrivalStats>,
    /// What the server did to each probe of the probing kinds (`malformed-json`,
    /// `h2-frames`, ...): `"<probe>: <reaction>"` → count, at most [`MAX_OUTCOMES`] keys.
    pub outcomes: BTreeMap<String, u64>,
    /// Hostile ballots the server accepted: a malformed or oversized submission answered
    /// 2xx, a replay answered 201 (logged again). Any fails the run's verdict.
    pub hostile_ballots: u64,
    /// The task's live table (time series, progress), when these stats were made in the
    /// task's scope ([`crate::live`]); every count below also goes there.
    pub live: Option<std::sync::Arc<crate::live::LiveTask>>,
}

/// Most distinct keys of [`Stats::outcomes`]: the reactions include what the server says
/// (status, error code), so the map is bounded; past it, new keys count as `other`.
pub const MAX_OUTCOMES: usize = 256;

/// One latency histogram's bounds: 1 µs .. 1 hour at 3 significant digits, fixed-size
/// whatever the run.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds")
}

/// What became of the legitimate ballots of an `arrivals` or `voters` task. Every voter that
/// arrived (every ballot a `voters` lane sent) ends in exactly one of `accepted` or
/// `failures`.
#[derive(Debug)]
pub struct ArrivalStats {
    pub arrived: u64,
    /// Voters whose ballot got a 2xx.
    pub accepted: u64,
    /// ... on the first try (no retry).
    pub accepted_first_try: u64,
    /// Retries of all voters (after 429/503, or a broken connection).
    pub retries: u64,
    /// Voters who sent a second ballot on the same visit, and how many of those got a 2xx.
    pub revotes_sent: u64,
    pub revotes_accepted: u64,
    /// Voters who gave up, by the last thing that went wrong: `connect`, `tls`, `reset`
    /// (their retry budget spent on these), `timeout` (their deadline passed), `status` (a
    /// final non-2xx answer, or a 429/503 when the retry budget was spent).
    pub failures: BTreeMap<String, u64>,
    /// The final answer of voters who failed on one, by status.
    pub final_statuses: BTreeMap<u16, u64>,
    /// From each voter's arrival (its scheduled time, not when it got to send) to its 2xx,
    /// handshakes, waits and retries included, in µs.
    pub from_arrival_us: Histogram<u64>,
    /// Receipts checked offline and good (signed checkpoint, inclusion, our exact ballot).
    pub receipts_verified: u64,
    /// Receipts that were not, by fault (`receipt_unverified`, `receipt_not_ours`, ...).
    pub receipt_faults: BTreeMap<String, u64>,
    /// Where each good receipt's entry is, for the closing audit: at most
    /// [`MAX_LOGGED_KEPT`] (40 bytes each); those past it are counted in `logged_not_kept`.
    pub logged: Vec<crate::receipts::Logged>,
    pub logged_not_kept: u64,
}

/// Good receipts kept for the closing audit, per task (40 MB at most).
pub const MAX_LOGGED_KEPT: usize = 1_000_000;

impl Default for ArrivalStats {
    fn default() -> Self {
        ArrivalStats {
            arrived: 0,
            accepted: 0,
            accepted_first_try: 0,
            retries: 0,
            revotes_sent: 0,
            revotes_accepted: 0,
            failures: BTreeMap::new(),
            final_statuses: BTreeMap::new(),
            from_arrival_us: histogram(),
            receipts_verified: 0,
            receipt_faults: BTreeMap::new(),
            logged: Vec::new(),
            logged_not_kept: 0,
        }
    }
}

impl ArrivalStats {
    /// A voter's ballot accepted after `retries` retries, `latency` after it arrived.
    pub fn accepted(&mut self, retries: u32, latency: Duration) {
        self.arrived += 1;
        self.accepted += 1;
        self.retries += u64::from(retries);
        if retries == 0 {
            self.accepted_first_try += 1;
        }
        self.from_arrival_us
            .saturating_record(latency.as_micros().max(1) as u64);
    }

    /// A voter's ballot given up after `retries` retries: `why` (`status`, `timeout`,
    /// `connect`, `reset`, ...), and the final status when an answer ended it.
    pub fn failed(&mut self, retries: u32, why: &str, final_status: Option<u16>) {
        self.arrived += 1;
        self.retries += u64::from(retries);
        *self.failures.entry(why.to_owned()).or_default() += 1;
        if let Some(s) = final_status {
            *self.final_statuses.entry(s).or_default() += 1;
        }
    }

    /// A receipt checked offline: good, or its fault.
    pub fn receipt(&mut self, checked: crate::receipts::Checked) {
        match checked {
            Ok(l) => {
                self.receipts_verified += 1;
                if self.logged.len() < MAX_LOGGED_KEPT {
                    self.logged.push(l);
                } else {
                    self.logged_not_kept += 1;
                }
            }
            Err(f) => *self.receipt_faults.entry(f.code().to_owned()).or_default() += 1,
        }
    }

    pub fn merge(&mut self, o: ArrivalStats) {
        self.arrived += o.arrived;
        self.receipts_verified += o.receipts_verified;
        let room = MAX_LOGGED_KEPT.saturating_sub(self.logged.len());
        self.logged_not_kept += o.logged_not_kept + o.logged.len().saturating_sub(room) as u64;
        self.logged.extend(o.logged.into_iter().take(room));
        for (k, v) in o.receipt_faults {
            *self.receipt_faults.entry(k).or_default() += v;
        }
        self.accepted += o.accepted;
        self.accepted_first_try += o.accepted_first_try;
        self.retries += o.retries;
        self.revotes_sent += o.revotes_sent;
        self.revotes_accepted += o.revotes_accepted;
        for (k, v) in o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        for (k, v) in o.final_statuses {
            *self.final_statuses.entry(k).or_default() += v;
        }
        // Same bounds on both sides: adding cannot fail.
        let _ = self.from_arrival_us.add(&o.from_arrival_us);
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            statuses: BTreeMap::new(),
            codes: BTreeMap::new(),
            connects: 0,
            io_errors: 0,
            closed_by_server: 0,
            ok_latency_us: histogram(),
            close_after_us: histogram(),
            failures: BTreeMap::new(),
            handshakes_attempted: 0,
            handshake_us: None,
            bytes_read: 0,
            skipped_at_cap: 0,
            arrivals: None,
            outcomes: BTreeMap::new(),
            hostile_ballots: 0,
            live: crate::live::current(),
        }
    }
}

impl Stats {
    pub fn answer(&mut self, status: u16, body: &[u8], latency: Duration) {
        self.answered(status, body);
        if (200..300).contains(&status) {
            self.ok_latency_us
                .saturating_record(latency.as_micros().max(1) as u64);
        }
    }

    /// Counts an answer's status and error code, without a latency (kinds that measure
    /// their own, e.g. from a voter's arrival).
    pub fn answered(&mut self, status: u16, body: &[u8]) {
        self.status_live(status);
        *self.statuses.entry(status).or_default() += 1;
        if !(200..300).contains(&status) {
            if let Some(code) = error_code(body) {
                *self.codes.entry(code).or_default() += 1;
            }
        }
    }

    /// Counts an answer's status only (no body to read, no latency to record).
    pub fn status(&mut self, status: u16) {
        self.status_live(status);
        *self.statuses.entry(status).or_default() += 1;
    }

    fn status_live(&self, status: u16) {
        if let Some(l) = &self.live {
            l.record(crate::live::Outcome::Status(status));
        }
    }

    /// A legitimate ballot accepted `latency` after it was due: into the live table's
    /// per-second p99 (the final report has it from [`ArrivalStats`]).
    pub fn legit_live(&self, latency: Duration) {
        if let Some(l) = &self.live {
            l.legit(latency);
        }
    }

    /// Counts a failure of this kind; it is an I/O error too.
    pub fn fail(&mut self, kind: &str) {
        if let Some(l) = &self.live {
            l.record(crate::live::Outcome::Error);
        }
        self.io_errors += 1;
        *self.failures.entry(kind.to_owned()).or_default() += 1;
    }

    /// Counts one reaction of the server to a probe (bounded: see [`MAX_OUTCOMES`]).
    pub fn outcome(&mut self, key: &str) {
        self.outcomes_add(key, 1);
    }

    /// Counts `n` reactions of one kind at once (bounded like [`Stats::outcome`]).
    pub fn outcomes_add(&mut self, key: &str, n: u64) {
        if let Some(v) = self.outcomes.get_mut(key) {
            *v += n;
        } else if self.outcomes.len() < MAX_OUTCOMES {
            self.outcomes.insert(key.to_owned(), n);
        } else {
            *self.outcomes.entry("other".to_owned()).or_default() += n;
        }
    }

    /// Records a completed TLS handshake that took `us`.
    pub fn handshake(&mut self, us: u64) {
        self.handshake_us
            .get_or_insert_with(histogram)
            .saturating_record(us);
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
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.handshakes_attempted += other.handshakes_attempted;
        if let Some(h) = other.handshake_us {
            match &mut self.handshake_us {
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => self.handshake_us = Some(h),
            }
        }
        self.bytes_read += other.bytes_read;
        self.skipped_at_cap += other.skipped_at_cap;
        for (k, v) in other.outcomes {
            self.outcomes_add(&k, v);
        }
        self.hostile_ballots += other.hostile_ballots;
        match (&mut self.arrivals, other.arrivals) {
            (Some(mine), Some(a)) => mine.merge(a),
            (None, Some(a)) => self.arrivals = Some(a),
            _ => {}
        }
    }
}

pub(crate) fn error_code(body: &[u8]) -> Option<String> {
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
    /// Failures by kind (`connect`, `tls`, `reset`, `timeout`, ...).
    pub failures: BTreeMap<String, u64>,
    pub bytes_read: u64,
    pub skipped_at_cap: u64,
    /// TLS handshakes: counts and handshake times (not answer latency).
    pub handshakes: Option<HandshakeReport>,
    /// The legitimate ballots' outcome (`arrivals` and `voters` tasks): accepted %, first
    /// try %, retries, latency from arrival (a `voters` ballot arrives at its scheduled
    /// send time).
    pub arrivals: Option<ArrivalsReport>,
    /// The probing kinds: what the server did to each probe (see [`Stats::outcomes`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, u64>,
    /// Hostile ballots the server accepted (see [`Stats::hostile_ballots`]).
    pub hostile_ballots: u64,
}

/// TLS handshakes a task made.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    /// Begun (`handshake-flood`, `tls-churn`); absent where the kind counts only
    /// completions (its `failures` say what went wrong).
    pub attempted: Option<u64>,
    pub completed: u64,
    pub completed_per_s: f64,
    /// `attempted - completed`, where attempts are counted: refused, reset, or still
    /// unfinished when the run ended (a connect stuck in SYN retries is one).
    pub failed: Option<u64>,
    /// Time from the TCP connect to the handshake's end.
    pub handshake_time: Option<Percentiles>,
}

/// What became of an `arrivals` or `voters` task's ballots.
#[derive(Debug, Clone, Serialize)]
pub struct ArrivalsReport {
    pub arrived: u64,
    pub accepted: u64,
    pub accepted_pct: f64,
    pub accepted_first_try_pct: f64,
    pub failed: u64,
    pub retries: u64,
    pub revotes_sent: u64,
    pub revotes_accepted: u64,
    pub failures: BTreeMap<String, u64>,
    pub final_statuses: BTreeMap<u16, u64>,
    /// From arrival (the scheduled time) to the 2xx, handshake and retries included.
    pub latency_from_arrival: Option<Percentiles>,
    /// Receipts checked offline with the log's verifier key and found good; 0 when the run
    /// does not check them (`verify_receipts = false`).
    pub receipts_verified: u64,
    /// Receipts that failed the check, by fault: each a voter left without proof.
    pub receipt_faults: BTreeMap<String, u64>,
}

impl ArrivalsReport {
    fn of(a: &ArrivalStats) -> ArrivalsReport {
        let pct = |n: u64| 100.0 * n as f64 / a.arrived.max(1) as f64;
        ArrivalsReport {
            arrived: a.arrived,
            accepted: a.accepted,
            accepted_pct: pct(a.accepted),
            accepted_first_try_pct: pct(a.accepted_first_try),
            failed: a.failures.values().sum(),
            retries: a.retries,
            revotes_sent: a.revotes_sent,
            revotes_accepted: a.revotes_accepted,
            failures: a.failures.clone(),
            final_statuses: a.final_statuses.clone(),
            latency_from_arrival: Percentiles::of(&a.from_arrival_us),
            receipts_verified: a.receipts_verified,
            receipt_faults: a.receipt_faults.clone(),
        }
    }
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
            failures: s.failures.clone(),
            bytes_read: s.bytes_read,
            skipped_at_cap: s.skipped_at_cap,
            handshakes: s.handshake_us.as_ref().map(|h| {
                let completed = h.len();
                let attempted = (s.handshakes_attempted > 0).then_some(s.handshakes_attempted);
                HandshakeReport {
                    attempted,
                    completed,
                    completed_per_s: completed as f64 / secs,
                    failed: attempted.map(|a| a.saturating_sub(completed)),
                    handshake_time: Percentiles::of(h),
                }
            }),
            arrivals: s.arrivals.as_ref().map(ArrivalsReport::of),
            outcomes: s.outcomes.clone(),
            hostile_ballots: s.hostile_ballots,
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
    /// Which run this is: scenario, seed, target, when.
    pub meta: RunMeta,
    /// The open-files limit the run had, against what its tasks could hold.
    pub open_files: crate::runner::OpenFiles,
    pub tasks: Vec<TaskReport>,
    /// Whether the voters got what the scenario's `expect` asks (the exit code: 0 or 1).
    pub verdict: Verdict,
    /// Each task's counts second by second, in the order of `tasks`.
    pub series: Vec<crate::live::TaskSeries>,
    /// The server's `/metrics` before and after, with the counters' deltas.
    pub server_metrics: Option<crate::server::ServerMetrics>,
    /// The server process sampled each second (`--server-pid`).
    pub server_process: Option<ServerProcess>,
    /// The closing audit of the target's log (absent: not audited; see `audit`, `roll`).
    pub audit: Option<crate::audit::AuditReport>,
}

/// Which run a report is of.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RunMeta {
    pub scenario_path: Option<String>,
    /// The scenario file's name without `.toml`.
    pub scenario_name: Option<String>,
    /// Replay the run with `--seed` this.
    pub seed: u64,
    pub target: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: u64,
}

/// The server process, sampled from `/proc` once a second.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ServerProcess {
    pub pid: u32,
    pub samples: Vec<crate::server::ProcSample>,
}

/// The run judged against the scenario's `expect`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// Each bound missed, in words, naming the task.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Judges every task with voters against `expect`.
    pub fn of(tasks: &[TaskReport], expect: &crate::scenario::Expect) -> Verdict {
        let mut failures = Vec::new();
        for t in tasks {
            if t.hostile_ballots > 0 {
                failures.push(format!(
                    "task {}: the server accepted {} hostile ballots (malformed, oversized or replayed)",
                    t.name, t.hostile_ballots
                ));
            }
            let Some(a) = &t.arrivals else {
                continue;
            };
            let name = &t.name;
            if a.arrived == 0 {
                failures.push(format!("task {name}: no voter arrived"));
                continue;
            }
            if a.accepted_pct < expect.min_accepted_pct {
                failures.push(format!(
                    "task {name}: {:.1}% of voters accepted ({} of {}; failed by {:?}), expected at least {}%",
                    a.accepted_pct, a.accepted, a.arrived, a.failures, expect.min_accepted_pct
                ));
            }
            if a.accepted_first_try_pct < expect.min_first_try_pct {
                failures.push(format!(
                    "task {name}: {:.1}% accepted on the first try, expected at least {}%",
                    a.accepted_first_try_pct, expect.min_first_try_pct
                ));
            }
            if let (Some(max), Some(p)) = (expect.max_p99_ms, &a.latency_from_arrival) {
                if p.p99_ms > max {
                    failures.push(format!(
                        "task {name}: p99 from arrival {:.1} ms, expected at most {max} ms",
                        p.p99_ms
                    ));
                }
            }
            let faults: u64 = a.receipt_faults.values().sum();
            if faults > 0 {
                failures.push(format!(
                    "task {name}: {faults} receipts failed the offline check: {:?}",
                    a.receipt_faults
                ));
            }
        }
        Verdict {
            passed: failures.is_empty(),
            failures,
        }
    }
}

impl Report {
    pub fn task(&self, name: &str) -> Option<&TaskReport> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// A table for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        if self.open_files.limit < self.open_files.needed {
            let _ = writeln!(
                out,
                "open-files limit {} is below the {} the scenario may hold: some connect errors are ours",
                self.open_files.limit, self.open_files.needed
            );
        }
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
            if !t.failures.is_empty() {
                let _ = writeln!(out, "  failures: {:?}", t.failures);
            }
            if t.bytes_read > 0 {
                let _ = writeln!(out, "  bytes read: {}", t.bytes_read);
            }
            if !t.outcomes.is_empty() {
                let _ = writeln!(out, "  outcomes: {:?}", t.outcomes);
            }
            if t.hostile_ballots > 0 {
                let _ = writeln!(out, "  HOSTILE BALLOTS ACCEPTED: {}", t.hostile_ballots);
            }
            if t.skipped_at_cap > 0 {
                let _ = writeln!(
                    out,
                    "  not opened (all `connections` busy): {}",
                    t.skipped_at_cap
                );
            }
            if let Some(h) = &t.handshakes {
                let _ = match (h.attempted, h.failed) {
                    (Some(a), Some(f)) => writeln!(
                        out,
                        "  handshakes: attempted {a} completed {} ({:.0}/s) failed {f}",
                        h.completed, h.completed_per_s
                    ),
                    _ => writeln!(
                        out,
                        "  handshakes completed {} ({:.0}/s)",
                        h.completed, h.completed_per_s
                    ),
                };
                if let Some(p) = &h.handshake_time {
                    let _ = writeln!(
                        out,
                        "  handshake time ms: p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
                        p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
                    );
                }
            }
            if let Some(a) = &t.arrivals {
                let _ = writeln!(
                    out,
                    "  voters: arrived {} accepted {} ({:.1}%, first try {:.1}%) failed {} retries {} revotes {}/{}",
                    a.arrived, a.accepted, a.accepted_pct, a.accepted_first_try_pct, a.failed,
                    a.retries, a.revotes_accepted, a.revotes_sent
                );
                if !a.failures.is_empty() {
                    let _ = writeln!(
                        out,
                        "  voters failed by: {:?}, final statuses {:?}",
                        a.failures, a.final_statuses
                    );
                }
                if a.receipts_verified > 0 || !a.receipt_faults.is_empty() {
                    let _ = writeln!(
                        out,
                        "  receipts verified offline: {} of {} accepted; faults {:?}",
                        a.receipts_verified, a.accepted, a.receipt_faults
                    );
                }
                if let Some(p) = &a.latency_from_arrival {
                    let _ = writeln!(
                        out,
                        "  from arrival to 2xx ms: p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
                        p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
                    );
                }
            }
        }
        if let Some(m) = &self.server_metrics {
            match &m.error {
                Some(e) => {
                    let _ = writeln!(out, "server metrics: {e}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "server metrics: {} counters moved over the run (in the JSON report)",
                        m.counter_deltas.len()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "seed: {} (replay with --seed {})",
            self.meta.seed, self.meta.seed
        );
        match &self.audit {
            None => {
                let _ = writeln!(out, "audit: not done (audit = false, or no roll)");
            }
            Some(a) if a.passed => {
                let _ = writeln!(
                    out,
                    "AUDIT PASS: log {} -> {} entries, consistent, {} checked, no rule broken; {} receipts in the log as given",
                    a.start_size, a.end_size, a.entries_checked, a.receipts_checked
                );
            }
            Some(a) => {
                for f in &a.failures {
                    let _ = writeln!(out, "AUDIT FAIL: {f}");
                }
                for f in a.violation_examples.iter().chain(&a.receipt_examples) {
                    let _ = writeln!(out, "  {f}");
                }
            }
        }
        if self.verdict.passed {
            let _ = writeln!(out, "PASS: the voters got what the scenario expects");
        } else {
            for f in &self.verdict.failures {
                let _ = writeln!(out, "FAIL: {f}");
            }
        }
        out
    }
}
