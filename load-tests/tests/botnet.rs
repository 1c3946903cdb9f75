//! The botnet kinds against the real server, at a scale CI can afford: voters arriving once
//! each on fresh TLS connections from addresses of their own, while idle TCP connections
//! are held and TLS handshakes are flooded from address pools. What is checked is the
//! simulator's own promises — every arriving voter is counted exactly once, the ballots it
//! reports accepted are the ones in the log — not how well the server holds up (its edge is
//! being hardened elsewhere).

mod common;

use urna_sim::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arriving_voter_is_counted_once_and_its_accepted_ballots_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Production limits, but a short handshake timeout so idle connections are seen to be
    // cut (and replaced from the next address) within the run.
    let served = common::serve(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[limits]
handshake_timeout_ms = 1000
[election]
id = "botnet-2026"
roll = "{d}/roll.txt"
demo_voters = 100
[storage]
dir = "{d}/data"
"#
    ))
    .await;
    let addr = served.addr;
    let against = format!(
        r#"
target = "{addr}"
ca = "{d}/data/tls/cert.pem"
voters = "{d}/voters.jsonl"
election = "botnet-2026"
audit = false
settle_ms = 100
"#
    );
    let scenario: Scenario = toml::from_str(&format!(
        r#"{against}
duration_s = 3

# 20 voters a second for 3 s: 60 voters, each from its own address, a quarter revoting.
[[task]]
kind = "arrivals"
name = "voters"
rate_per_s = 20
sources = "127.200.0.0/14"
revote_share = 0.25
deadline_s = 5

# 200 idle TCP connections held from a pool of 4,094 addresses.
[[task]]
kind = "idle-tcp"
name = "idle"
connections = 200
sources = "127.210.0.0/20"

# 50 TLS handshakes a second from a pool of 1,022 addresses, dropped once done.
[[task]]
kind = "handshake-flood"
name = "handshakes"
connections = 64
rate_per_s = 50
sources = "127.220.0.0/22"
"#
    ))
    .unwrap();
    scenario.check().unwrap();
    let before = served.logged();
    let report = urna_sim::run(&scenario).await.unwrap();
    println!("{}", report.human());
    println!("{}", serde_json::to_string_pretty(&report).unwrap());

    let voters = report.task("voters").unwrap();
    let arrived = voters.arrivals.as_ref().unwrap();
    assert_eq!(voters.kind, "arrivals");
    // Every scheduled voter arrived, and each ended exactly once: accepted or failed.
    assert_eq!(arrived.arrived, 60, "{arrived:?}");
    assert_eq!(
        arrived.accepted + arrived.failed,
        arrived.arrived,
        "{arrived:?}"
    );
    assert!(arrived.accepted > 0, "{arrived:?}");
    assert!(arrived.revotes_sent <= 15, "{arrived:?}");
    // Each voter opened a connection of its own: at least one handshake per voter.
    let handshakes = voters.handshakes.as_ref().unwrap();
    assert!(handshakes.completed >= arrived.accepted, "{handshakes:?}");
    assert!(arrived.latency_from_arrival.is_some());
    // What the voters were told was accepted is what the log holds: first ballots and
    // revotes alike are new entries.
    assert_eq!(served.logged() - before, voters.status(201), "{voters:?}");

    let idle = report.task("idle").unwrap();
    assert!(idle.connects >= 200, "{idle:?}");
    let flood = report.task("handshakes").unwrap();
    let hs = flood.handshakes.as_ref().unwrap();
    let attempted = hs.attempted.unwrap();
    assert!(attempted >= 100 && hs.completed > 0, "{hs:?}");
    assert_eq!(hs.completed + hs.failed.unwrap(), attempted, "{hs:?}");

    // A run needing more voter keys than the file has is refused before it starts: a key
    // used twice would be a revote or a conflict, not a new voter.
    let greedy: Scenario = toml::from_str(&format!(
        r#"{against}
duration_s = 3
[[task]]
kind = "arrivals"
name = "too many"
rate_per_s = 100
sources = "127.200.0.0/14"
"#
    ))
    .unwrap();
    let err = urna_sim::run(&greedy).await.unwrap_err().to_string();
    assert!(err.contains("voter keys"), "{err}");
    served.stop().await;
}
