//! What the server says about itself over the run: its Prometheus `/metrics` scraped before
//! and after (with the counters' deltas), and, given its pid, its resident memory and CPU
//! time sampled each second from `/proc`. Both are the server's view, beside the
//! simulator's own counts: a gap between them is a finding.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::h1;
use crate::net::{preflight, Target};

/// Largest number of series kept from one scrape: the server's own exposition has a few
/// hundred; a target that answers more is not allowed to grow the report.
pub const MAX_SERIES: usize = 5_000;
/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes `GET /metrics` on a connection of its own: every sample, by `name{labels}`.
pub async fn scrape(target: &Target) -> Result<BTreeMap<String, f64>, String> {
    let io = preflight(target).await.map_err(|e| e.to_string())?;
    let mut conn = h1::Conn::new(io);
    let req = h1::encode_request(&http::Method::GET, target.host(), "/metrics", None);
    let answer = tokio::time::timeout(SCRAPE_TIMEOUT, conn.send(&req))
        .await
        .map_err(|_| format!("GET /metrics: no answer in {SCRAPE_TIMEOUT:?}"))?
        .map_err(|e| format!("GET /metrics: {e}"))?;
    if answer.status != 200 {
        return Err(format!(
            "GET /metrics answered {} (is this address in the server's metrics_allow?)",
            answer.status
        ));
    }
    Ok(parse_prometheus(&String::from_utf8_lossy(answer.body)))
}

/// Parses Prometheus text exposition: `name{labels} value [timestamp]` lines, comments and
/// blank lines skipped, malformed lines ignored. Keys are `name{labels}` as written (the
/// server writes labels in one order, so before and after match). At most [`MAX_SERIES`].
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The value follows the series: after the closing brace when there are labels
        // (label values may hold spaces), else after the name.
        let split = match line.rfind('}') {
            Some(close) => close + 1,
            None => match line.find(char::is_whitespace) {
                Some(i) => i,
                None => continue,
            },
        };
        let (series, rest) = line.split_at(split);
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        if out.len() >= MAX_SERIES {
            break;
        }
        out.insert(series.trim().to_owned(), value);
    }
    out
}

/// The server's metrics around the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// Why a scrape failed, if one did (the rest is then partial or empty).
    pub error: Option<String>,
    /// Series in the scrape before the run and after it.
    pub series_before: usize,
    pub series_after: usize,
    /// After − before for every counter (`*_total`, and histograms' `_count` and `_sum`)
    /// that moved; a series new after the run counts from 0.
    pub counter_deltas: BTreeMap<String, f64>,
    /// Every other series (gauges) as it was after the run.
    pub gauges_after: BTreeMap<String, f64>,
}

/// Whether a series is cumulative (its delta is what the run did).
fn is_counter(series: &str) -> bool {
    let name = series.split('{').next().unwrap_or(series);
    name.ends_with("_total")
        || name.ends_with("_count")
        || name.ends_with("_sum")
        || name.ends_with("_bucket")
}

impl ServerMetrics {
    pub fn of(
        before: Result<BTreeMap<String, f64>, String>,
        after: Result<BTreeMap<String, f64>, String>,
    ) -> ServerMetrics {
        let mut m = ServerMetrics::default();
        let (before, after) = match (before, after) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) => {
                m.error = Some(format!("before the run: {e}"));
                return m;
            }
            (_, Err(e)) => {
                m.error = Some(format!("after the run: {e}"));
                return m;
            }
        };
        m.series_before = before.len();
        m.series_after = after.len();
        for (k, v) in &after {
            if is_counter(k) {
                let d = v - before.get(k).copied().unwrap_or(0.0);
                if d != 0.0 && d.is_finite() {
                    m.counter_deltas.insert(k.clone(), d);
                }
            } else {
                m.gauges_after.insert(k.clone(), *v);
            }
        }
        m
    }
}

/// One sample of the server process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcSample {
    /// Seconds from the counted window's start.
    pub t_s: f64,
    pub rss_bytes: u64,
    /// User + system CPU time since the process started, in seconds.
    pub cpu_s: f64,
    /// CPU used since the previous sample, in % of one core.
    pub cpu_pct: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on every Linux ABI that
/// matters here; reading it needs `sysconf`, which is `unsafe` behind libc).
const USER_HZ: f64 = 100.0;

/// Reads `pid`'s resident memory (VmRSS) and CPU time (utime + stime).
pub fn read_proc(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')'. utime and stime are fields 14 and 15, i.e. 12th and 13th after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((rss_kb * 1024, (utime + stime) / USER_HZ))
}

/// Samples `pid` once a second from `start` until `until` or `stop`, at most `max` samples.
pub async fn sample(
    pid: u32,
    start: Instant,
    until: Instant,
    max: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<ProcSample> {
    let mut out: Vec<ProcSample> = Vec::new();
    let mut tick = tokio::time::interval_at(start.into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(Instant, f64)> = None;
    // Bounded by `max` and by `until`.
    while out.len() < max {
        let now = tick.tick().await.into_std();
        if now > until || stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let Some((rss_bytes, cpu_s)) = read_proc(pid) else {
            break;
        };
        let cpu_pct = match last {
            Some((t, c)) => 100.0 * (cpu_s - c) / now.duration_since(t).as_secs_f64().max(1e-3),
            None => 0.0,
        };
        last = Some((now, cpu_s));
        out.push(ProcSample {
            t_s: now.saturating_duration_since(start).as_secs_f64(),
            rss_bytes,
            cpu_s,
            cpu_pct,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_parses_and_counters_give_deltas() {
        let before = parse_prometheus(
            "# HELP urna_responses_total answers\n# TYPE urna_responses_total counter\n\
             urna_responses_total{route=\"ballots\",status=\"201\"} 10\n\
             urna_connections_open 3\nbroken line\nlabel_spaces{a=\"x y\"} 2 1700000000\n",
        );
        assert_eq!(before.len(), 3);
        assert_eq!(before["label_spaces{a=\"x y\"}"], 2.0);
        let after = parse_prometheus(
            "urna_responses_total{route=\"ballots\",status=\"201\"} 25\n\
             urna_responses_total{route=\"ballots\",status=\"429\"} 4\n\
             urna_connections_open 7\nh_bucket{le=\"+Inf\"} 1\n",
        );
        let m = ServerMetrics::of(Ok(before), Ok(after));
        assert!(m.error.is_none());
        assert_eq!(
            m.counter_deltas["urna_responses_total{route=\"ballots\",status=\"201\"}"],
            15.0
        );
        assert_eq!(
            m.counter_deltas["urna_responses_total{route=\"ballots\",status=\"429\"}"],
            4.0
        );
        assert_eq!(m.gauges_after["urna_connections_open"], 7.0);
        let failed = ServerMetrics::of(Err("404".into()), Ok(BTreeMap::new()));
        assert!(failed.error.unwrap().contains("before"));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let (rss, cpu) = read_proc(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert!(cpu >= 0.0);
    }
}
