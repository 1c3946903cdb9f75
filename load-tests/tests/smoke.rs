//! The CI smoke load (issue 4): the real server — edge, ballot layer, durable log — on its
//! production limits, hit by a burst of hostile traffic while voters from other addresses
//! cast ballots. Voters must still get through; the hostile source must be refused at the
//! edge. Bounded: a few seconds, a few thousand requests, loopback only.

mod common;

use urna_sim::{Scenario, Task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_get_through_while_one_source_floods_and_slowloris_holds_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Production defaults for every limit (5 ballots/s a source, 100/s a /24, ...); a short
    // header timeout so slowloris connections are seen to be cut within the run.
    let served = common::serve(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[limits]
header_read_timeout_ms = 1000
[election]
id = "smoke-2026"
roll = "{d}/roll.txt"
demo_voters = 64
[storage]
dir = "{d}/data"
"#
    ))
    .await;
    let addr = served.addr;

    // Where the server is and whom to vote as: the same for both runs below.
    let against = format!(
        r#"
target = "{addr}"
ca = "{d}/data/tls/cert.pem"
voters = "{d}/voters.jsonl"
election = "smoke-2026"
audit = false
"#
    );
    let scenario: Scenario = toml::from_str(&format!(
        r#"{against}
duration_s = 4

# 32 voters, each on its own address of one /24, one ballot a second each: well inside the
# per-source (5/s) and per-prefix (100/s) budgets.
[[task]]
kind = "voters"
name = "voters"
connections = 32
sources = "127.2.0.0/24"
rate_per_s = 32
ballots = 96

# One address sending bad ballots as fast as it can.
[[task]]
kind = "flood"
name = "flood"
connections = 8
sources = "127.66.0.1/32"
request = "bad-signature"

# Connections that never finish a request head.
[[task]]
kind = "slowloris"
name = "slowloris"
connections = 16
sources = "127.77.0.0/24"
interval_ms = 200
"#
    ))
    .unwrap();
    scenario.check().unwrap();
    assert!(matches!(scenario.tasks[0], Task::Voters { .. }));
    let report = urna_sim::run(&scenario).await.unwrap();
    println!("{}", report.human());

    let voters = report.task("voters").unwrap();
    let flood = report.task("flood").unwrap();
    let slow = report.task("slowloris").unwrap();
    // Every voter ballot sent in the run was logged: 201, nothing refused, nothing lost.
    assert!(voters.status(201) >= 90, "{voters:?}");
    assert_eq!(voters.status(201), voters.answers, "{voters:?}");
    // The flood was answered, overwhelmingly with 429 at the edge (a handful of 422s
    // before its burst ran out), until its 50th 429 within 10 s put the source in the
    // penalty box: from then on its connections are closed and every reconnect is reset at
    // accept (I/O errors here), never answered again.
    assert!(flood.status(429) >= 45, "{flood:?}");
    assert_eq!(
        flood.status(429) + flood.status(422),
        flood.answers,
        "{flood:?}"
    );
    assert!(flood.status(422) <= 20, "{flood:?}");
    assert!(flood.io_errors > 0, "{flood:?}");
    assert_eq!(flood.status(201), 0, "{flood:?}");
    // Slowloris connections were cut by the header timeout, not left open.
    assert!(slow.closed_by_server >= 16, "{slow:?}");

    // And the log holds exactly the voters' ballots after the manifest.
    assert_eq!(served.logged(), 1 + voters.status(201));

    // A warm-up sends but does not count: 1 s of warm-up, then 2 counted seconds at 32/s
    // (each voter revotes with a higher seq).
    let logged_before = served.logged();
    let warm: Scenario = toml::from_str(&format!(
        r#"{against}
duration_s = 2
warmup_s = 1
settle_ms = 100

[[task]]
kind = "voters"
name = "voters"
connections = 32
sources = "127.3.0.0/24"
rate_per_s = 32
ballots = 128
"#
    ))
    .unwrap();
    warm.check().unwrap();
    let report = urna_sim::run(&warm).await.unwrap();
    let counted = report.task("voters").unwrap();
    let logged = served.logged() - logged_before;
    assert_eq!(counted.status(201), counted.answers, "{counted:?}");
    assert!((48..=72).contains(&counted.answers), "{counted:?}");
    // About 32 more were sent and logged in the warm-up, outside the count.
    assert!(
        logged >= counted.answers + 24,
        "logged {logged}, {counted:?}"
    );
    served.stop().await;
}
