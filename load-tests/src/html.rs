//! The report as one self-contained HTML file: the run's facts, throughput and the
//! legitimate ballots' p99 over time (inline SVG drawn with `plotters`), the server's
//! memory and CPU when sampled, and tables of the counts, the verdict, the audit and the
//! server's counters. No script, no stylesheet or font from elsewhere: it opens offline.
//!
//! Rendered from the report's JSON (what `--json` writes), so `urna-sim report` re-renders
//! a saved run exactly as the run itself rendered it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use serde::Deserialize;

use crate::audit::AuditReport;
use crate::live::TaskSeries;
use crate::report::{RunMeta, ServerProcess};
use crate::server::ServerMetrics;

/// Rows of server counter deltas shown (all are in the JSON).
const MAX_METRIC_ROWS: usize = 300;

/// What the HTML shows of a report; read back from its JSON.
#[derive(Debug, Deserialize)]
pub struct RunView {
    #[serde(default)]
    pub meta: RunMeta,
    pub tasks: Vec<TaskView>,
    pub verdict: VerdictView,
    #[serde(default)]
    pub series: Vec<TaskSeries>,
    #[serde(default)]
    pub server_metrics: Option<ServerMetrics>,
    #[serde(default)]
    pub server_process: Option<ServerProcess>,
    #[serde(default)]
    pub audit: Option<AuditReport>,
}

#[derive(Debug, Deserialize)]
pub struct TaskView {
    pub name: String,
    pub kind: String,
    pub answers: u64,
    pub ok_per_s: f64,
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
    #[serde(default)]
    pub io_errors: u64,
    #[serde(default)]
    pub ok_latency: Option<PctView>,
    #[serde(default)]
    pub arrivals: Option<ArrivalsView>,
}

#[derive(Debug, Deserialize)]
pub struct PctView {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Deserialize)]
pub struct ArrivalsView {
    pub arrived: u64,
    pub accepted: u64,
    pub accepted_pct: f64,
    pub accepted_first_try_pct: f64,
    pub failed: u64,
    #[serde(default)]
    pub latency_from_arrival: Option<PctView>,
    #[serde(default)]
    pub receipts_verified: u64,
}

#[derive(Debug, Deserialize)]
pub struct VerdictView {
    pub passed: bool,
    #[serde(default)]
    pub failures: Vec<String>,
}

/// Renders the report JSON `json` as HTML.
pub fn render_json(json: &serde_json::Value) -> anyhow::Result<String> {
    let view: RunView = serde_json::from_value(json.clone())
        .map_err(|e| anyhow::anyhow!("not an urna-sim report: {e}"))?;
    Ok(render(&view))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line chart: `lines` of (name, points); an empty string when nothing to draw.
fn chart(title: &str, y_desc: &str, lines: &[(String, Vec<(f64, f64)>)]) -> String {
    let xmax = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max);
    let ymax = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if lines.iter().all(|(_, p)| p.is_empty()) {
        return String::new();
    }
    let ymax = if ymax <= 0.0 { 1.0 } else { ymax * 1.1 };
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (960, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        c.configure_mesh()
            .x_desc("seconds from the start")
            .y_desc(y_desc)
            .draw()?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            c.draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg,
        Err(e) => format!("<p>chart {}: {}</p>", esc(title), esc(&e.to_string())),
    }
}

/// The whole page.
pub fn render(r: &RunView) -> String {
    let mut h = String::new();
    let name = r.meta.scenario_name.as_deref().unwrap_or("run");
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>urna-sim: {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;\
         padding:3px 8px;text-align:right}}th{{background:#eee}}td:first-child{{text-align:left}}\
         .pass{{color:#080;font-weight:bold}}.fail{{color:#b00;font-weight:bold}}</style>\
         </head><body><h1>urna-sim: {}</h1>",
        esc(name),
        esc(name)
    );
    let m = &r.meta;
    let _ = write!(
        h,
        "<table><tr><th>scenario</th><td>{}</td></tr><tr><th>target</th><td>{}</td></tr>\
         <tr><th>seed</th><td>{}</td></tr><tr><th>started</th><td>{}</td></tr>\
         <tr><th>ended</th><td>{}</td></tr><tr><th>duration</th><td>{} s</td></tr></table>",
        esc(m.scenario_path.as_deref().unwrap_or("-")),
        esc(&m.target),
        m.seed,
        esc(&m.started_at),
        esc(&m.ended_at),
        m.duration_s
    );
    // Verdict and audit first: what a reader wants to know.
    let _ = write!(h, "<h2>Verdict</h2>");
    if r.verdict.passed {
        let _ = write!(
            h,
            "<p class=\"pass\">PASS: the voters got what the scenario expects</p>"
        );
    } else {
        let _ = write!(h, "<p class=\"fail\">FAIL</p><ul>");
        for f in &r.verdict.failures {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        let _ = write!(h, "</ul>");
    }
    let _ = write!(h, "<h2>Closing audit</h2>");
    match &r.audit {
        None => {
            let _ = write!(h, "<p>not audited (audit = false, or no roll)</p>");
        }
        Some(a) => {
            let _ = write!(
                h,
                "<p class=\"{}\">{}</p><table><tr><th>tree at start</th><td>{}</td></tr>\
                 <tr><th>tree at end</th><td>{}</td></tr><tr><th>entries checked</th><td>{}</td></tr>\
                 <tr><th>end extends start</th><td>{}</td></tr><tr><th>receipts looked up</th><td>{}</td></tr>\
                 <tr><th>receipts not in the log as given</th><td>{}</td></tr></table>",
                if a.passed { "pass" } else { "fail" },
                if a.passed { "PASS" } else { "FAIL" },
                a.start_size,
                a.end_size,
                a.entries_checked,
                a.consistent,
                a.receipts_checked,
                a.receipts_missing
            );
            if !a.failures.is_empty() || !a.violation_examples.is_empty() {
                let _ = write!(h, "<ul>");
                for f in a
                    .failures
                    .iter()
                    .chain(&a.violation_examples)
                    .chain(&a.receipt_examples)
                {
                    let _ = write!(h, "<li>{}</li>", esc(f));
                }
                let _ = write!(h, "</ul>");
            }
        }
    }
    let _ = write!(h, "<h2>Over time</h2>");
    let secs =
        |s: &TaskSeries, f: &dyn Fn(&crate::live::Point) -> Option<f64>| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .filter_map(|p| f(p).map(|v| (p.t_s as f64, v)))
                .collect()
        };
    let throughput: Vec<(String, Vec<(f64, f64)>)> = r
        .series
        .iter()
        .map(|s| (s.task.clone(), secs(s, &|p| Some(p.requests as f64))))
        .collect();
    h.push_str(&chart(
        "Requests ended per second, by task",
        "per second",
        &throughput,
    ));
    let ok: Vec<(String, Vec<(f64, f64)>)> = r
        .series
        .iter()
        .map(|s| (format!("{} 2xx", s.task), secs(s, &|p| Some(p.ok as f64))))
        .collect();
    h.push_str(&chart("2xx answers per second, by task", "per second", &ok));
    let p99: Vec<(String, Vec<(f64, f64)>)> = r
        .series
        .iter()
        .map(|s| (s.task.clone(), secs(s, &|p| p.legit_p99_ms)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    h.push_str(&chart(
        "Legitimate ballots: p99 from when due, per second",
        "ms",
        &p99,
    ));
    if let Some(p) = &r.server_process {
        let rss = vec![(
            "RSS".to_owned(),
            p.samples
                .iter()
                .map(|s| (s.t_s, s.rss_bytes as f64 / (1 << 20) as f64))
                .collect(),
        )];
        h.push_str(&chart(
            &format!("Server (pid {}) resident memory", p.pid),
            "MiB",
            &rss,
        ));
        let cpu = vec![(
            "CPU".to_owned(),
            p.samples
                .iter()
                .skip(1)
                .map(|s| (s.t_s, s.cpu_pct))
                .collect(),
        )];
        h.push_str(&chart(
            &format!("Server (pid {}) CPU", p.pid),
            "% of a core",
            &cpu,
        ));
    }
    let _ = write!(
        h,
        "<h2>Tasks</h2><table><tr><th>task</th><th>kind</th><th>answers</th><th>2xx/s</th>\
         <th>statuses</th><th>I/O errors</th><th>2xx p50 / p99 / max ms</th></tr>"
    );
    for t in &r.tasks {
        let statuses: Vec<String> = t
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let lat = t
            .ok_latency
            .as_ref()
            .map(|p| format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p99_ms, p.max_ms))
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.name),
            esc(&t.kind),
            t.answers,
            t.ok_per_s,
            esc(&statuses.join(", ")),
            t.io_errors,
            lat
        );
    }
    let _ = write!(h, "</table>");
    if r.tasks.iter().any(|t| t.arrivals.is_some()) {
        let _ = write!(
            h,
            "<h2>Voters</h2><table><tr><th>task</th><th>arrived</th><th>accepted</th>\
             <th>accepted %</th><th>first try %</th><th>failed</th><th>receipts verified</th>\
             <th>from due p50 / p99 / max ms</th></tr>"
        );
        for t in &r.tasks {
            let Some(a) = &t.arrivals else { continue };
            let lat = a
                .latency_from_arrival
                .as_ref()
                .map(|p| format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p99_ms, p.max_ms))
                .unwrap_or_else(|| "-".into());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                esc(&t.name),
                a.arrived,
                a.accepted,
                a.accepted_pct,
                a.accepted_first_try_pct,
                a.failed,
                a.receipts_verified,
                lat
            );
        }
        let _ = write!(h, "</table>");
    }
    let _ = write!(h, "<h2>Server counters over the run</h2>");
    match &r.server_metrics {
        None => {
            let _ = write!(h, "<p>not scraped</p>");
        }
        Some(sm) => {
            if let Some(e) = &sm.error {
                let _ = write!(h, "<p class=\"fail\">{}</p>", esc(e));
            }
            // Histogram buckets stay in the JSON: their `_count` and `_sum` say enough here.
            let rows: Vec<(&String, &f64)> = sm
                .counter_deltas
                .iter()
                .filter(|(k, _)| !k.split('{').next().unwrap_or(k).ends_with("_bucket"))
                .collect();
            let _ = write!(h, "<table><tr><th>series</th><th>after − before</th></tr>");
            for (k, v) in rows.iter().take(MAX_METRIC_ROWS) {
                let _ = write!(h, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
            }
            let _ = write!(h, "</table>");
            if rows.len() > MAX_METRIC_ROWS {
                let _ = write!(
                    h,
                    "<p>{} more in the JSON</p>",
                    rows.len() - MAX_METRIC_ROWS
                );
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}
