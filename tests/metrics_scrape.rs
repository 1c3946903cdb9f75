//! `/metrics` of the real `urna serve`, scraped as Prometheus would: every series described,
//! histograms (never summaries), lowercase label values, every alertable counter at 0 on a
//! fresh server, the build and process series, ballot latency by result; and the shipped
//! alert rules and dashboard name only series (and label values) a server really exposes.

mod e2e;
mod net;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use e2e::{assert_error, ballot, Server, ELECTION};
use http::StatusCode;
use net::{get, H1};
use urna::ballot::keys::VoterSecret;
use urna::edge::metrics::catalog::{self, REJECTIONS};

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A scrape, parsed (Prometheus text format 0.0.4).
#[derive(Debug)]
struct Scrape {
    text: String,
    help: BTreeSet<String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut help = BTreeSet::new();
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(!text.trim().is_empty(), "empty help: {line}");
                assert!(help.insert(name.to_owned()), "HELP twice for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(
                    help.contains(name),
                    "# TYPE {name} without a # HELP before it"
                );
                let old = types.insert(name.to_owned(), kind.to_owned());
                assert!(old.is_none(), "TYPE twice for {name}");
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            samples.push(parse_sample(line));
        }
        Scrape {
            text,
            help,
            types,
            samples,
        }
    }

    /// The family a sample belongs to: `x_bucket`, `x_sum`, `x_count` of a histogram `x`.
    fn family<'a>(&self, name: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if self.types.get(base).is_some_and(|t| t == "histogram") {
                    return base;
                }
            }
        }
        name
    }

    /// Samples of one series name (exact), optionally with the given labels.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .collect()
    }

    /// The one value of a series; panics if absent or ambiguous.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "{name}{labels:?}: {} samples\n{}",
            found.len(),
            self.text
        );
        found[0].value
    }
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("sample name");
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find('=').expect("label =");
            let key = r[..eq].to_owned();
            r = r[eq + 1..].strip_prefix('"').expect("label value quoted");
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next().expect("closing quote");
                match c {
                    '\\' => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            r = &r[end + 1..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
    }
    let value = rest
        .split_whitespace()
        .next()
        .expect("sample value")
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    Sample {
        name,
        labels,
        value,
    }
}

async fn scrape(h: &mut H1) -> Scrape {
    let a = h.send(get("/metrics")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        a.header("content-type")
    );
    Scrape::parse(String::from_utf8(a.body.to_vec()).expect("UTF-8"))
}

async fn start(voters: u32) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), voters, "", &[]);
    let server = Server::start(&config).await;
    (dir, server)
}

/// The conventions every scrape keeps, fresh or busy.
fn assert_conventions(s: &Scrape) {
    assert!(s.samples.len() > 100, "{}", s.text);
    for sample in &s.samples {
        let family = s.family(&sample.name);
        assert!(
            s.types.contains_key(family),
            "{}: no # TYPE for {family}",
            sample.name
        );
        for (k, v) in &sample.labels {
            // `le` is Prometheus' own ("+Inf"), not ours.
            if k != "le" {
                assert_eq!(
                    v,
                    &v.to_lowercase(),
                    "{}{{{k}}}: label values are lowercase",
                    sample.name
                );
            }
        }
    }
    for (name, kind) in &s.types {
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "{name} is a {kind}: summaries cannot be aggregated across servers"
        );
        assert!(s.help.contains(name), "{name} has no # HELP");
    }
    // Every histogram on the catalog's fixed buckets.
    for series in catalog::SERIES {
        if let catalog::Kind::Histogram(buckets) = series.kind {
            let bucket = format!("{}_bucket", series.name);
            for sample in s.samples.iter().filter(|x| x.name == bucket) {
                let le = sample.label("le").unwrap();
                if le != "+Inf" {
                    let le: f64 = le.parse().unwrap();
                    assert!(buckets.contains(&le), "{bucket} le={le}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_shows_every_alertable_counter_at_zero_with_help_and_lowercase_labels() {
    let (_dir, server) = start(2).await;
    let mut h = server.h1().await;
    let s = scrape(&mut h).await;
    assert_conventions(&s);

    // The counters docs/OPERATIONS.md says to alert on, at 0 before their first event: an
    // alert written as increase(...) > 0 sees the first one.
    let zero = |name: &str, labels: &[(&str, &str)]| {
        assert_eq!(s.value(name, labels), 0.0, "{name}{labels:?}");
    };
    zero("urna_log_poisoned_total", &[]);
    zero("urna_log_queue_full_total", &[]);
    zero("urna_penalty_box_entered_total", &[]);
    zero("urna_tls_reloads_total", &[("result", "error")]);
    for reason in [
        "penalty_box",
        "denied",
        "max_connections",
        "waster_table_full",
        "max_connections_per_source",
        "max_connections_per_prefix",
        "new_connection_rate",
        "new_connection_rate_prefix",
        "source_table_full",
        "prefix_table_full",
        "first_byte_timeout",
        "proxy_header_untrusted",
    ] {
        zero(
            "urna_rejections_total",
            &[("layer", "l1"), ("reason", reason)],
        );
    }
    zero(
        "urna_rejections_total",
        &[("layer", "l2"), ("reason", "handshake_timeout")],
    );
    for layer in ["l6", "l7"] {
        zero(
            "urna_rejections_total",
            &[("layer", layer), ("reason", "overloaded")],
        );
    }
    for status in ["503", "500"] {
        zero(
            "urna_responses_total",
            &[("route", "ballots"), ("status", status)],
        );
    }
    // And every other refusal the server can count exists too, in lowercase.
    for (layer, reasons) in REJECTIONS {
        for reason in *reasons {
            s.value(
                "urna_rejections_total",
                &[("layer", layer), ("reason", reason)],
            );
        }
    }
    assert!(
        s.find("urna_rejections_total", &[])
            .iter()
            .all(|x| x.label("layer").is_some_and(|l| l.starts_with('l'))),
        "{}",
        s.text
    );
    // Histograms exist (empty) before their first sample.
    assert_eq!(s.value("urna_log_commit_seconds_count", &[]), 0.0);
    assert_eq!(
        s.value("urna_log_commit_seconds_bucket", &[("le", "+Inf")]),
        0.0
    );

    // Which build runs.
    let info = s.find("urna_build_info", &[]);
    assert_eq!(info.len(), 1, "{}", s.text);
    assert_eq!(info[0].value, 1.0);
    assert_eq!(info[0].label("version"), Some(env!("CARGO_PKG_VERSION")));
    let revision = info[0].label("revision").unwrap();
    let checkout = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match checkout {
        Some(head) => assert_eq!(revision, head, "built from the checked-out commit"),
        None => assert_eq!(revision, "unknown"),
    }
    let rustc = info[0].label("rustc").unwrap();
    assert!(
        rustc.split('.').count() >= 3 && rustc.starts_with("1."),
        "rustc={rustc}"
    );
    assert!(
        info[0].label("target").unwrap().contains("linux"),
        "{info:?}"
    );

    // What the process uses, under the client libraries' standard names.
    let rss = s.value("process_resident_memory_bytes", &[]);
    assert!(rss > 1e6, "rss {rss}");
    let fds = s.value("process_open_fds", &[]);
    let max_fds = s.value("process_max_fds", &[]);
    assert!(fds >= 3.0 && max_fds >= fds, "fds {fds} of {max_fds}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = s.value("process_start_time_seconds", &[]);
    assert!(
        (now - 120.0..=now + 1.0).contains(&started),
        "started {started}, now {now}"
    );
    assert!(s.value("process_threads", &[]) >= 2.0);
    assert!(s.value("process_cpu_seconds_total", &[]) >= 0.0);
    assert_eq!(s.types["process_cpu_seconds_total"], "counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballot_latency_is_split_by_result_so_a_voters_wait_reads_apart_from_refusals() {
    let (dir, server) = start(2).await;
    let voters = e2e::voters(dir.path());
    let mut h = server.h1().await;
    let before = scrape(&mut h).await;
    let a = h
        .send(ballot(voters[0].sign_submission(ELECTION, 1, b"yes")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let stranger = VoterSecret::ed25519_from_seed(&[7; 32]);
    for _ in 0..3 {
        let a = h
            .send(ballot(stranger.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap();
        assert_error(&a, 403, "not_eligible");
    }
    let s = scrape(&mut h).await;
    assert_conventions(&s);
    let count = |scrape: &Scrape, result: &str| {
        scrape
            .find(
                "urna_request_duration_seconds_count",
                &[("route", "ballots"), ("result", result)],
            )
            .first()
            .map_or(0.0, |x| x.value)
    };
    assert_eq!(count(&s, "ok") - count(&before, "ok"), 1.0, "{}", s.text);
    assert_eq!(count(&s, "refused") - count(&before, "refused"), 3.0);
    assert_eq!(count(&s, "overloaded"), 0.0);
    // The refusals were counted at L5, in lowercase.
    assert_eq!(
        s.value(
            "urna_rejections_total",
            &[("layer", "l5"), ("reason", "not_eligible")]
        ),
        3.0
    );
}

/// A client that sends its whole ClientHello and then never answers the server's flight:
/// the handshake takes a slot, the table ends the connection at the handshake timeout, and
/// the handshake's future is dropped mid-await. `urna_handshakes_in_flight` must come back
/// to 0 (it once counted up for every such handshake, and never down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_flight_falls_back_to_zero_when_stalled_handshakes_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 1, "", &[("handshake_timeout_ms", "300")]);
    let server = Server::start(&config).await;
    let roots = rustls::RootCertStore::empty();
    let client = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut conn =
            rustls::ClientConnection::new(client.clone(), "localhost".try_into().unwrap()).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&hello).await.unwrap();
        stalled.push(tcp);
    }
    // Each reads the server's flight (the handshake is in flight) and then the close.
    for tcp in &mut stalled {
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = 0;
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the stalled handshake was never cut");
        assert!(got > 0, "the server never sent its flight");
    }
    let mut h = server.h1().await;
    let s = scrape(&mut h).await;
    assert_eq!(s.value("urna_handshakes_in_flight", &[]), 0.0, "{}", s.text);
    assert!(
        s.value(
            "urna_rejections_total",
            &[("layer", "l2"), ("reason", "handshake_timeout")]
        ) >= 4.0
    );
}

/// A PromQL selector found in an expression: the metric and its `label="value"` matchers
/// (equality, or a regex of plain alternatives `a|b`).
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, Vec<String>)>,
}

/// Every `urna_*` and `process_*` selector in a PromQL expression. Matchers on `job` and
/// `instance` are Prometheus' target labels, not the server's, and are skipped, as are
/// regexes that are not plain alternatives and Grafana variables (`$instance`).
fn selectors(expr: &str) -> Vec<Selector> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b'$')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        if !(word.starts_with("urna_") || word.starts_with("process_")) {
            continue;
        }
        let mut matchers = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let end = expr[i..].find('}').expect("closing brace") + i;
            for m in expr[i + 1..end].split(',').filter(|m| !m.trim().is_empty()) {
                let m = m.trim();
                let op_at = m.find(['=', '!']).expect("matcher op");
                let label = m[..op_at].trim().to_owned();
                let op_end = m[op_at..].find('"').expect("quoted value") + op_at;
                let op = m[op_at..op_end].trim();
                let value = m[op_end + 1..m.len() - 1].to_owned();
                if ["job", "instance"].contains(&label.as_str()) || value.contains('$') {
                    continue;
                }
                let plain = |v: &str| {
                    v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                };
                match op {
                    "=" => matchers.push((label, vec![value])),
                    "=~" if value.split('|').all(plain) => {
                        matchers.push((label, value.split('|').map(str::to_owned).collect()))
                    }
                    _ => {}
                }
            }
            i = end + 1;
        }
        out.push(Selector {
            metric: word.to_owned(),
            matchers,
        });
    }
    out
}

/// The PromQL of `deploy/prometheus/alerts.yml`: every `expr:`, on one line or as a block.
fn alert_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = line.find("expr:") else {
            continue;
        };
        if line.trim_start().starts_with('#') {
            continue;
        }
        let inline = line[at + 5..].trim();
        if inline.starts_with('|') || inline.starts_with('>') || inline.is_empty() {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(inline.trim_matches(['\'', '"']).to_owned());
        }
    }
    out
}

/// Every PromQL string of the Grafana dashboard: panel targets and template queries.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(q)) = q.get("query") {
                            out.push(q.clone());
                        }
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_exprs(item, out);
            }
        }
        _ => {}
    }
}

/// Checks each selector against a scrape: the series exists, with each label value named.
fn check_selectors(source: &str, exprs: &[String], s: &Scrape) -> usize {
    let mut checked = 0;
    for expr in exprs {
        for sel in selectors(expr) {
            let family = s.family(&sel.metric);
            let samples: Vec<&Sample> = s
                .samples
                .iter()
                .filter(|x| s.family(&x.name) == family)
                .collect();
            assert!(
                s.types.contains_key(family) && !samples.is_empty(),
                "{source}: {} in `{expr}` is not exported",
                sel.metric
            );
            if sel.metric != family {
                assert_eq!(s.types[family], "histogram", "{source}: {}", sel.metric);
            }
            for (label, values) in &sel.matchers {
                for value in values {
                    assert!(
                        samples.iter().any(|x| x.label(label) == Some(value)),
                        "{source}: no {family} series has {label}=\"{value}\" (in `{expr}`)"
                    );
                }
            }
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_rules_and_dashboard_name_only_series_a_serving_server_exposes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/urna.json")).unwrap(),
    )
    .expect("the dashboard is JSON");

    // Some traffic of every kind the series come from: a ballot logged, one with a forged
    // signature (L6), one from a stranger (L5), a read, an unknown path.
    let (dir, server) = start(2).await;
    let voters = e2e::voters(dir.path());
    let mut h = server.h1().await;
    let a = h
        .send(ballot(voters[0].sign_submission(ELECTION, 1, b"yes")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let mut forged: serde_json::Value =
        serde_json::from_str(&voters[1].sign_submission(ELECTION, 1, b"yes")).unwrap();
    let other: serde_json::Value =
        serde_json::from_str(&voters[1].sign_submission(ELECTION, 1, b"no")).unwrap();
    forged["sig"] = other["sig"].clone();
    let a = h.send(ballot(forged.to_string())).await.unwrap();
    assert_error(&a, 422, "bad_signature");
    let stranger = VoterSecret::ed25519_from_seed(&[8; 32]);
    let a = h
        .send(ballot(stranger.sign_submission(ELECTION, 1, b"x")))
        .await
        .unwrap();
    assert_error(&a, 403, "not_eligible");
    assert_eq!(h.status(get("/v1/receipts/1")).await, StatusCode::OK);
    assert_eq!(h.status(get("/nowhere")).await, StatusCode::NOT_FOUND);
    let s = scrape(&mut h).await;
    assert_conventions(&s);

    let exprs = alert_exprs(&rules);
    assert!(exprs.len() >= 12, "{exprs:?}");
    let alerts = check_selectors("alerts.yml", &exprs, &s);
    assert!(alerts >= 15, "checked only {alerts} selectors in the rules");

    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let panels = check_selectors("urna.json", &exprs, &s);
    assert!(
        panels >= 25,
        "checked only {panels} selectors in the dashboard"
    );
    promtool_parses_the_dashboard(&exprs);
}

/// The dashboard's PromQL, parsed by Prometheus' own parser: each panel query becomes a
/// recording rule (Grafana's variables replaced by values) for `promtool check rules`.
/// CI installs promtool and names it in `PROMTOOL`; without it (a developer's machine) this
/// one check is left to CI.
fn promtool_parses_the_dashboard(exprs: &[String]) {
    let Some(promtool) = std::env::var_os("PROMTOOL") else {
        eprintln!("PROMTOOL unset: the dashboard's PromQL is parsed in CI only");
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        // Template queries (label_values) are Grafana's, not PromQL.
        if e.starts_with("label_values(") || e == "prometheus" {
            continue;
        }
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".+");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("urna-dashboard-rules.yml");
    std::fs::write(&path, rules).unwrap();
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("PROMTOOL runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_selector_reader_sees_what_a_rule_names() {
    let found = selectors(
        r#"sum by (instance) (rate(urna_responses_total{route="ballots",status=~"2..|503"}[5m])) / process_max_fds{job="urna"} + urna_x_bucket{layer=~"l6|l7",instance=~"$instance"}"#,
    );
    let names: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        names,
        ["urna_responses_total", "process_max_fds", "urna_x_bucket"]
    );
    assert_eq!(
        found[0].matchers,
        [("route".to_owned(), vec!["ballots".to_owned()])]
    );
    assert!(found[1].matchers.is_empty());
    assert_eq!(
        found[2].matchers,
        [("layer".to_owned(), vec!["l6".to_owned(), "l7".to_owned()])]
    );
    let block = "      - alert: X\n        expr: |\n          a_total\n            > 0\n        for: 1m\n      - alert: Y\n        expr: b > 1\n";
    assert_eq!(alert_exprs(block), ["a_total > 0", "b > 1"]);
}
