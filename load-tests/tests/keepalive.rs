//! Lanes against the real server's keep-alive quota: when the server ends a connection after
//! `max_requests_per_connection` answers (`Connection: close` on the last for HTTP/1.1, GOAWAY
//! for HTTP/2), the lanes reconnect and lose no ballot.

mod common;

use urna_sim::{Report, Scenario};

/// Runs one voters task (its `task` lines added) against a real server that closes each
/// connection after 5 requests; returns the report and how many ballots the log gained.
async fn against_request_quota(task: &str) -> (Report, u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let served = common::serve(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[limits]
max_requests_per_connection = 5
ballots_per_source_per_s = 1000
ballots_burst_per_source = 1000
[election]
id = "keepalive-2026"
roll = "{d}/roll.txt"
demo_voters = 16
[storage]
dir = "{d}/data"
"#
    ))
    .await;
    let addr = served.addr;

    let scenario: Scenario = toml::from_str(&format!(
        r#"
target = "{addr}"
ca = "{d}/data/tls/cert.pem"
voters = "{d}/voters.jsonl"
election = "keepalive-2026"
audit = false
duration_s = 4
settle_ms = 100

[[task]]
kind = "voters"
name = "voters"
sources = "127.4.0.0/24"
{task}
"#
    ))
    .unwrap();
    scenario.check().unwrap();
    let report = urna_sim::run(&scenario).await.unwrap();
    println!("{}", report.human());
    let logged = served.logged() - 1;
    served.stop().await;
    (report, logged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_lanes_reconnect_after_the_servers_request_quota_and_lose_no_ballot() {
    // 4 connections, 12 ballots each at 4 a second each: every connection crosses its
    // 5-request quota twice.
    let (report, logged) =
        against_request_quota("connections = 4\nrate_per_s = 16\nballots = 48").await;
    let voters = report.task("voters").unwrap();

    assert_eq!(voters.status(201), 48, "{voters:?}");
    assert_eq!(voters.answers, 48, "{voters:?}");
    // Each connection is closed after answers 5 and 10: 8 clean closes, 8 reconnects on
    // top of the 4 opened before the clock, and nothing broken.
    assert_eq!(voters.closed_by_server, 8, "{voters:?}");
    assert_eq!(voters.connects, 4 + 8, "{voters:?}");
    assert_eq!(voters.io_errors, 0, "{voters:?}");
    assert_eq!(logged, 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_lanes_reconnect_after_goaway_and_lose_no_ballot() {
    // 4 connections of 4 streams, 6 ballots a stream: each connection crosses its quota.
    let (report, logged) = against_request_quota(
        "connections = 4\nrate_per_s = 32\nballots = 96\nhttp2 = true\nstreams_per_connection = 4",
    )
    .await;
    let voters = report.task("voters").unwrap();
    assert_eq!(voters.status(201), 96, "{voters:?}");
    assert_eq!(voters.answers, 96, "{voters:?}");
    assert!(voters.connects > 4, "{voters:?}");
    // Each GOAWAY is counted as the server's close, and costs one reconnect, not one per
    // lane that saw it.
    assert!(voters.closed_by_server >= 4, "{voters:?}");
    assert_eq!(voters.connects, 4 + voters.closed_by_server, "{voters:?}");
    assert_eq!(voters.io_errors, 0, "{voters:?}");
    assert_eq!(logged, 96);
}
