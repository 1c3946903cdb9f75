//! The probing attack kinds (issue 13) against the real server, briefly: each test runs one
//! kind for a few seconds and checks what the server answered — the contract's statuses
//! and codes (PROTOCOL.md §6), and that nothing hostile reached the log. The per-source
//! budgets are raised so the probes reach the parser rather than the rate limiter (which
//! `botnet.rs` and `smoke.rs` cover).

mod common;

use urna_sim::report::{Report, TaskReport};
use urna_sim::Scenario;

/// The server on production limits except the budgets (and any `extra` limits).
async fn serve(dir: &std::path::Path, election: &str, extra: &str) -> common::Served {
    let d = dir.display();
    common::serve(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[limits]
ballots_per_source_per_s = 100000
ballots_burst_per_source = 100000
ballots_per_prefix_per_s = 100000
ballots_burst_per_prefix = 100000
reads_per_source_per_s = 100000
reads_burst_per_source = 100000
reads_per_prefix_per_s = 100000
reads_burst_per_prefix = 100000
penalty_box_strikes = 1000000
{extra}
[election]
id = "{election}"
roll = "{d}/roll.txt"
demo_voters = 64
[storage]
dir = "{d}/data"
"#
    ))
    .await
}

async fn run(
    served: &common::Served,
    dir: &std::path::Path,
    election: &str,
    tasks: &str,
) -> Report {
    let d = dir.display();
    let addr = served.addr;
    let scenario: Scenario = toml::from_str(&format!(
        r#"
target = "{addr}"
ca = "{d}/data/tls/cert.pem"
voters = "{d}/voters.jsonl"
roll = "{d}/roll.txt"
election = "{election}"
settle_ms = 100
duration_s = 3
{tasks}
"#
    ))
    .unwrap();
    scenario.check().unwrap();
    let report = urna_sim::run(&scenario).await.unwrap();
    println!("{}", report.human());
    // Whatever the attack, the log at the end holds every voter's ballot as its receipt
    // says, grew consistently, and holds no hostile ballot.
    let audit = report.audit.as_ref().expect("the closing audit ran");
    assert!(audit.passed, "closing audit: {:?}", audit.failures);
    report
}

/// Outcomes under `label` (`"<label>: <reaction>"`), summed.
fn under(t: &TaskReport, label: &str) -> u64 {
    t.outcomes
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{label}: ")))
        .map(|(_, v)| v)
        .sum()
}

fn outcome(t: &TaskReport, key: &str) -> u64 {
    t.outcomes.get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ballots_are_refused_400_malformed_and_none_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), "mj-2026", "").await;
    let before = served.logged();
    let report = run(
        &served,
        dir.path(),
        "mj-2026",
        r#"
[[task]]
kind = "malformed-json"
name = "mj"
connections = 4
sources = "127.51.0.0/16"
seed = 7
"#,
    )
    .await;
    let t = report.task("mj").unwrap();
    assert!(t.answers >= 100, "{t:?}");
    // Every answer a 400 with the contract's code: no other status, no 2xx.
    assert_eq!(t.status(400), t.answers, "{t:?}");
    assert_eq!(t.code("malformed"), t.answers, "{t:?}");
    assert_eq!(t.hostile_ballots, 0, "{t:?}");
    for v in [
        "truncated",
        "wrong-type",
        "duplicate-key",
        "deep-nesting",
        "bad-base64",
        "non-utf8",
        "unknown-field",
        "missing-field",
        "trailing-data",
        "not-object",
        "seq-range",
    ] {
        assert!(outcome(t, &format!("{v}: 400 malformed")) > 0, "{v}: {t:?}");
    }
    assert_eq!(served.logged(), before);
    assert!(report.verdict.passed, "{:?}", report.verdict);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_lying_bodies_get_413_408_or_400_and_none_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    // A short body timeout, so a body declared larger than sent is answered in the run.
    let served = serve(dir.path(), "ob-2026", "body_timeout_ms = 1000").await;
    let before = served.logged();
    let report = run(
        &served,
        dir.path(),
        "ob-2026",
        r#"
[[task]]
kind = "oversize-body"
name = "ob"
connections = 8
sources = "127.52.0.0/16"
answer_wait_ms = 3000
"#,
    )
    .await;
    let t = report.task("ob").unwrap();
    assert!(t.answers >= 40, "{t:?}");
    assert_eq!(t.hostile_ballots, 0, "{t:?}");
    assert!(
        t.statuses.keys().all(|s| [400, 408, 413].contains(s)),
        "{t:?}"
    );
    // What §6 promises, probe by probe.
    for (probe, want) in [
        ("over-limit", "413 too_large"),
        ("chunked-over-limit", "413 too_large"),
        ("absurd-length", "413 too_large"),
        ("declared-larger", "408 request_timeout"),
        ("declared-smaller", "400 malformed"),
    ] {
        assert!(
            outcome(t, &format!("{probe}: {want}")) > 0,
            "{probe}: {t:?}"
        );
        assert_eq!(
            outcome(t, &format!("{probe}: {want}")),
            under(t, probe),
            "{probe}: {t:?}"
        );
    }
    // Heads that cannot be framed: refused (hyper's 400) or cut, never answered otherwise.
    for probe in ["overflow-length", "negative-length", "conflicting-lengths"] {
        let refused =
            outcome(t, &format!("{probe}: 400")) + outcome(t, &format!("{probe}: closed"));
        assert!(refused > 0, "{probe}: {t:?}");
        assert_eq!(refused, under(t, probe), "{probe}: {t:?}");
    }
    assert_eq!(served.logged(), before);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_bombs_are_refused_431_or_cut_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), "hb-2026", "").await;
    let report = run(
        &served,
        dir.path(),
        "hb-2026",
        r#"
[[task]]
kind = "header-bomb"
name = "hb"
connections = 4
sources = "127.53.0.0/16"
"#,
    )
    .await;
    let t = report.task("hb").unwrap();
    assert!(t.answers + t.closed_by_server >= 40, "{t:?}");
    // No bomb is served: every answer is a refusal of the head.
    assert!(
        t.statuses.keys().all(|s| [400, 414, 431].contains(s)),
        "{t:?}"
    );
    for probe in ["many-headers", "huge-value", "long-line", "many-bytes"] {
        assert!(under(t, probe) > 0, "{probe}: {t:?}");
        let silent = outcome(t, &format!("{probe}: silent"));
        assert_eq!(
            silent, 0,
            "{probe}: the server held a bomb without answering: {t:?}"
        );
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_flood_gets_whole_tiles_entry_bundles_checkpoints_and_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), "rf-2026", "").await;
    // A log with ballots in it first: 40 voters, so there are receipts to read.
    run(
        &served,
        dir.path(),
        "rf-2026",
        r#"
[[task]]
kind = "voters"
name = "voters"
connections = 8
sources = "127.54.0.0/24"
ballots = 40
"#,
    )
    .await;
    assert!(served.logged() >= 41);
    let report = run(
        &served,
        dir.path(),
        "rf-2026",
        r#"
[[task]]
kind = "read-flood"
name = "rf"
connections = 4
sources = "127.55.0.0/16"
paths = { checkpoint = 1, tile = 2, entries = 2, receipt = 2 }
"#,
    )
    .await;
    let t = report.task("rf").unwrap();
    assert!(t.answers >= 200, "{t:?}");
    assert_eq!(t.status(200), t.answers, "{t:?}");
    for class in ["checkpoint", "tile", "entries", "receipt"] {
        assert!(outcome(t, &format!("{class}: 200")) > 0, "{class}: {t:?}");
    }
    assert_eq!(outcome(t, "tile: wrong length"), 0, "{t:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_ballots_are_never_logged_twice_nor_undo_a_revote() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), "rp-2026", "").await;
    let before = served.logged();
    let report = run(
        &served,
        dir.path(),
        "rp-2026",
        r#"
[[task]]
kind = "replay"
name = "rp"
connections = 4
keys = 8
sources = "127.56.0.0/16"
"#,
    )
    .await;
    let t = report.task("rp").unwrap();
    // Each key's two real ballots logged once each, and nothing else.
    assert_eq!(outcome(t, "capture: 201"), 16, "{t:?}");
    assert_eq!(served.logged() - before, 16, "{t:?}");
    assert!(outcome(t, "exact-replay: 200") > 0, "{t:?}");
    assert_eq!(
        outcome(t, "exact-replay: 200"),
        under(t, "exact-replay"),
        "{t:?}"
    );
    assert!(outcome(t, "stale-replay: 409 stale_seq") > 0, "{t:?}");
    assert_eq!(
        outcome(t, "stale-replay: 409 stale_seq"),
        under(t, "stale-replay"),
        "{t:?}"
    );
    assert!(outcome(t, "conflict: 409 conflict") > 0, "{t:?}");
    assert_eq!(t.hostile_ballots, 0, "{t:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_frame_attacks_are_cut_or_answered_as_the_protocol_says() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), "h2-2026", "").await;
    let task = |attack: &str, n: usize| {
        format!(
            r#"
[[task]]
kind = "h2-frames"
name = "{attack}"
attack = "{attack}"
connections = 1
sources = "127.57.{n}.0/24"
frames = 2000
hold_ms = 2500
"#
        )
    };
    let tasks: String = [
        "rapid-reset",
        "continuation",
        "stream-flood",
        "ping-flood",
        "settings-flood",
        "empty-data",
    ]
    .iter()
    .enumerate()
    .map(|(n, a)| task(a, n))
    .collect();
    let report = run(&served, dir.path(), "h2-2026", &tasks).await;
    let ended =
        |t: &TaskReport, label: &str| outcome(t, &format!("{label}: still open at hold_ms"));
    // Rapid reset: the server stops it (GOAWAY or close), on every connection.
    let rr = report.task("rapid-reset").unwrap();
    assert!(rr.connects >= 1, "{rr:?}");
    assert!(under(rr, "rapid-reset") > 0, "{rr:?}");
    assert_eq!(ended(rr, "rapid-reset"), 0, "rapid reset left open: {rr:?}");
    // An endless header block is cut.
    let ct = report.task("continuation").unwrap();
    assert!(under(ct, "continuation") > 0, "{ct:?}");
    assert_eq!(
        ended(ct, "continuation"),
        0,
        "continuation left open: {ct:?}"
    );
    // Requests past the concurrency bound: answered (our HPACK is understood) or refused.
    let sf = report.task("stream-flood").unwrap();
    assert!(outcome(sf, "stream-flood: answers") > 0, "{sf:?}");
    // PING and SETTINGS floods are cut past the connection's budget (100 at once, 10 a
    // second: limits.h2_control_frames_*), not answered 2,000 times.
    for (name, acks) in [
        ("ping-flood", "ping acks"),
        ("settings-flood", "settings acks"),
    ] {
        let t = report.task(name).unwrap();
        assert!(t.connects >= 1, "{t:?}");
        assert_eq!(ended(t, name), 0, "{name} left open: {t:?}");
        let answered = outcome(t, &format!("{name}: {acks}"));
        assert!(
            answered <= 200 * t.connects,
            "{name}: {answered} acks: {t:?}"
        );
    }
    assert!(under(report.task("empty-data").unwrap(), "empty-data") > 0);
    served.stop().await;
}

/// The shipped attack scenarios parse, pass every bound, and each runs its kind beside
/// arriving voters (a typo in a key would otherwise surface only in a 45 s run).
#[test]
fn every_attack_scenario_parses_passes_its_bounds_and_has_voters() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.starts_with("attack-") {
            continue;
        }
        let s = Scenario::read(&path).unwrap();
        s.check().unwrap_or_else(|e| panic!("{file}: {e}"));
        let kinds: Vec<&str> = s.tasks.iter().map(|t| t.kind()).collect();
        assert!(kinds.contains(&"arrivals"), "{file}: {kinds:?}");
        let kind = file.trim_start_matches("attack-").trim_end_matches(".toml");
        assert!(kinds.contains(&kind), "{file}: {kinds:?}");
        seen.push(kind.to_owned());
    }
    seen.sort();
    let want = [
        "h2-frames",
        "header-bomb",
        "malformed-json",
        "oversize-body",
        "read-flood",
        "replay",
    ];
    assert_eq!(seen, want);
}
