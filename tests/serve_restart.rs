//! `urna serve` across restarts, against the real binary over real TLS: a clean restart
//! keeps the voters' state and the tree; SIGKILL during a stream of submissions from
//! several clients loses no receipt that was answered.
//!
//! "Consistent with the old checkpoint" is checked from outside: the new log's entries are
//! downloaded (entry bundles) and the RFC 6962 root of their first `old.size` leaves, computed
//! by the test's own reference (`tests/common`), must be the old checkpoint's root.

mod common;
mod e2e;
mod net;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{assert_error, ballot, checkpoint, entries, receipt, Server, ELECTION};
use http::StatusCode;
use net::get;
use rand::{Rng, SeedableRng};
use urna::audit::proof::leaf_hash;
use urna::audit::receipt::{verify_receipt, CheckpointBody, VerifiedReceipt};
use urna::ballot::keys::VoterSecret;

/// Checks the new log against what was seen before: every receipt's entry is at its index,
/// and every old checkpoint's root is the root of the new log's prefix of its size.
async fn assert_log_extends(
    server: &Server,
    receipts: &[VerifiedReceipt],
    old: &[CheckpointBody],
) -> CheckpointBody {
    let mut h = server.h1().await;
    let (cp, _) = checkpoint(&mut h, &server.verifier_key).await;
    let all = entries(&mut h, cp.size).await;
    let leaves: Vec<[u8; 32]> = all.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(
        common::mth(&leaves),
        cp.root,
        "bundles match the checkpoint"
    );
    for c in old {
        assert!(c.size <= cp.size, "tree shrank: {} -> {}", c.size, cp.size);
        assert_eq!(
            common::mth(&leaves[..c.size as usize]),
            c.root,
            "old checkpoint of size {} is a prefix of the new tree",
            c.size
        );
    }
    for r in receipts {
        assert_eq!(all[r.index as usize], r.entry, "entry {} kept", r.index);
    }
    cp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_voters_state_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 4, "", &[]);
    let server = Server::start(&config).await;
    let vkey = server.verifier_key.clone();
    let voters = e2e::voters(dir.path());
    let mut h = server.h1().await;
    let mut receipts = Vec::new();
    for v in &voters {
        for seq in 1..=2 {
            let a = h
                .send(ballot(v.sign_submission(ELECTION, seq, b"before")))
                .await
                .unwrap();
            assert_eq!(a.status, StatusCode::CREATED);
            receipts.push(verify_receipt(&receipt(&a), &vkey).unwrap());
        }
    }
    let (before, _) = checkpoint(&mut h, &vkey).await;
    drop(h);
    server.terminate();

    let server = Server::start(&config).await;
    assert_eq!(server.verifier_key, vkey, "same log key after restart");
    assert!(
        !server.stdout.iter().any(|l| l.contains("generated now")),
        "nothing regenerated: {:?}",
        server.stdout
    );
    let after = assert_log_extends(&server, &receipts, std::slice::from_ref(&before)).await;
    assert_eq!(after.size, before.size, "a clean restart appends nothing");
    let mut h = server.h1().await;
    for v in &voters {
        // seq 1 is stale after seq 2, across the restart too.
        let a = h
            .send(ballot(v.sign_submission(ELECTION, 1, b"before")))
            .await
            .unwrap();
        assert_error(&a, 409, "stale_seq");
    }
    // The identical resend of the last ballot still answers with its old index.
    let last = voters[0].sign_submission(ELECTION, 2, b"before");
    let a = h.send(ballot(last)).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(receipt(&a).index, receipts[1].index);
    let a = h
        .send(ballot(voters[0].sign_submission(ELECTION, 3, b"after")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let r = verify_receipt(&receipt(&a), &vkey).unwrap();
    assert_eq!(r.index, before.size, "appended after the old tree");
    // Old receipts still verify offline, and their entries are served by index.
    for old in &receipts {
        let a = h
            .send(get(&format!("/v1/receipts/{}", old.index)))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            verify_receipt(&receipt(&a), &vkey).unwrap().entry,
            old.entry
        );
    }
}

/// Kills during a stream of ballots: at least this many rounds.
const KILLS: usize = 5;
/// Clients submitting at once, each on its own connection with its own voters.
const CLIENTS: usize = 4;
const VOTERS: u32 = 32;

/// What one streaming client got: (voter, seq, receipt) for each 201, and the answer that
/// ended the stream (`None`: the connection failed).
type Streamed = (Vec<(usize, u64, VerifiedReceipt)>, Option<(u16, String)>);

/// Starts `CLIENTS` clients, each on its own connection with its own voters, sending
/// revotes back to back until the connection fails or a ballot is not answered 201.
async fn stream(
    server: &Server,
    voters: &Arc<Vec<VoterSecret>>,
    next_seq: &Arc<Mutex<Vec<u64>>>,
    vkey: &str,
) -> Vec<tokio::task::JoinHandle<Streamed>> {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut h = server.h1().await;
        let voters = voters.clone();
        let next_seq = next_seq.clone();
        let vkey = vkey.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Bounded in count; the kill or shutdown ends it sooner.
            for i in 0..10_000usize {
                let who = c + CLIENTS * (i % (voters.len() / CLIENTS));
                // After a kill, a ballot sent but never answered may or may not be logged,
                // so every voter's next seq goes past anything ever sent.
                let seq = {
                    let mut s = next_seq.lock().unwrap();
                    s[who] += 1;
                    s[who] - 1
                };
                let body = voters[who].sign_submission(ELECTION, seq, b"stream");
                match h.send(ballot(body)).await {
                    Ok(a) if a.status == StatusCode::CREATED => {
                        let r = receipt(&a);
                        let v = verify_receipt(&r, &vkey).expect("answered receipt");
                        got.push((who, seq, v));
                    }
                    Ok(a) => return (got, Some((a.status.as_u16(), a.error_code()))),
                    Err(_) => break,
                }
            }
            (got, None)
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_receipt_survives_sigkill_during_a_stream_of_ballots() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), VOTERS, "max_ballots_per_voter = 100000", &[]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xdead);
    let mut server = Server::start(&config).await;
    let vkey = server.verifier_key.clone();
    let voters: Arc<Vec<VoterSecret>> = Arc::new(e2e::voters(dir.path()));
    let next_seq = Arc::new(Mutex::new(vec![1u64; voters.len()]));
    let mut receipts: Vec<VerifiedReceipt> = Vec::new();
    let mut checkpoints: BTreeMap<u64, CheckpointBody> = BTreeMap::new();
    let mut answered_per_round = Vec::new();
    let mut seen = 0;
    let mut final_size = 0;
    // Highest answered seq per voter.
    let mut last_answered: BTreeMap<usize, u64> = BTreeMap::new();

    for _ in 0..KILLS {
        let tasks = stream(&server, &voters, &next_seq, &vkey).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.kill();
        let mut answered = 0;
        for t in tasks {
            let (got, end) = t.await.expect("client task");
            assert_eq!(end, None, "a stream ended on an answer, not the kill");
            answered += got.len();
            for (who, seq, v) in got {
                let top = last_answered.entry(who).or_insert(seq);
                *top = (*top).max(seq);
                checkpoints
                    .entry(v.checkpoint.size)
                    .or_insert_with(|| v.checkpoint.clone());
                receipts.push(v);
            }
        }
        answered_per_round.push(answered);

        server = Server::start(&config).await;
        assert_eq!(server.verifier_key, vkey);
        let old: Vec<CheckpointBody> = checkpoints.values().cloned().collect();
        let cp = assert_log_extends(&server, &receipts, &old).await;
        // Every checkpoint seen so far is now a proven prefix of `cp`'s tree, so checking
        // `cp` against the next tree covers them all (and keeps the test linear in rounds).
        seen += checkpoints.len();
        final_size = cp.size;
        checkpoints.clear();
        checkpoints.insert(cp.size, cp);
    }
    eprintln!(
        "answered per round {answered_per_round:?}, checkpoints checked {seen}, final size {final_size}"
    );
    assert!(
        answered_per_round.iter().all(|&n| n > 0),
        "every round answered ballots before its kill: {answered_per_round:?}"
    );
    // The voters' state survived too: below any answered seq is stale.
    let mut h = server.h1().await;
    let mut checked = 0;
    for (&who, &seq) in last_answered.iter().filter(|(_, &s)| s >= 2) {
        let body = voters[who].sign_submission(ELECTION, seq - 1, b"replaced");
        assert_error(&h.send(ballot(body)).await.unwrap(), 409, "stale_seq");
        checked += 1;
    }
    assert!(checked > 0, "{last_answered:?}");
    drop(h);
    server.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_closes_at_later_ballots_are_refused_and_a_final_checkpoint_covers_the_earlier_ones() {
    use time::format_description::well_known::Rfc3339;
    let dir = tempfile::tempdir().unwrap();
    let close = time::OffsetDateTime::now_utc() + Duration::from_secs(3);
    let closes_at = close.format(&Rfc3339).unwrap();
    let config = e2e::write_config(
        dir.path(),
        2,
        &format!("closes_at = \"{closes_at}\""),
        &[("request_timeout_ms", "300")],
    );
    let server = Server::start(&config).await;
    let vkey = server.verifier_key.clone();
    let voters = e2e::voters(dir.path());
    let mut h = server.h1().await;
    let a = h
        .send(ballot(voters[0].sign_submission(ELECTION, 1, b"in time")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "sent before closes_at");
    let early = verify_receipt(&receipt(&a), &vkey).unwrap();
    let wait =
        std::time::Duration::try_from(close - time::OffsetDateTime::now_utc()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let a = h
        .send(ballot(voters[1].sign_submission(ELECTION, 1, b"too late")))
        .await
        .unwrap();
    assert_error(&a, 403, "election_closed");

    let final_path = dir.path().join("data/final-checkpoint");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !final_path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let note = std::fs::read(&final_path).expect("final checkpoint written");
    let fin = urna::audit::receipt::verify_checkpoint(&note, &vkey).unwrap();
    assert_eq!(fin.size, 2, "manifest + the ballot in time");
    assert_log_extends(
        &server,
        std::slice::from_ref(&early),
        std::slice::from_ref(&fin),
    )
    .await;
    drop(h);
    server.terminate();

    // After the close, the server refuses to start unless told to serve a closed election
    // (a past closes_at is most often a mistyped date)...
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_urna"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--allow-closed-window"), "{err}");
    // ...and then the log still opens (replay does not judge old ballots against the clock),
    // keeps the final tree, and still refuses ballots.
    let server = Server::start_with(&config, &["--allow-closed-window"]).await;
    let cp = assert_log_extends(&server, &[early], &[fin]).await;
    assert_eq!(cp.size, 2);
    let a = server
        .h1()
        .await
        .send(ballot(voters[0].sign_submission(
            ELECTION,
            2,
            b"revote late",
        )))
        .await
        .unwrap();
    assert_error(&a, 403, "election_closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_revote_none_a_voter_who_voted_before_a_restart_stays_voted() {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 2, "revote = \"none\"", &[]);
    let server = Server::start(&config).await;
    let voters = e2e::voters(dir.path());
    let first = voters[0].sign_submission(ELECTION, 1, b"once");
    let a = server.h1().await.send(ballot(first.clone())).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let index = receipt(&a).index;
    server.terminate();

    let server = Server::start(&config).await;
    let mut h = server.h1().await;
    let a = h
        .send(ballot(voters[0].sign_submission(ELECTION, 2, b"twice")))
        .await
        .unwrap();
    assert_error(&a, 409, "already_voted");
    let a = h.send(ballot(first)).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "identical resend after restart");
    assert_eq!(receipt(&a).index, index);
    let a = h
        .send(ballot(voters[1].sign_submission(
            ELECTION,
            1,
            b"first time",
        )))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_other_election_rules_refuses_to_start_on_the_old_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 2, "revote = \"last\"", &[]);
    let server = Server::start(&config).await;
    let voters = e2e::voters(dir.path());
    let a = server
        .h1()
        .await
        .send(ballot(voters[0].sign_submission(ELECTION, 1, b"x")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    server.terminate();

    // Same storage and roll, other rules: entry 0 no longer describes this election.
    e2e::write_config(dir.path(), 2, "revote = \"none\"", &[]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_urna"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + e2e::START;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("started serving an old log under other rules");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    // The setting that differs, with both values.
    assert!(
        err.contains("election.revote: the log's manifest has last, this server has none"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_stream_exits_cleanly_and_keeps_every_answered_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), VOTERS, "max_ballots_per_voter = 100000", &[]);
    let server = Server::start(&config).await;
    let vkey = server.verifier_key.clone();
    let voters: Arc<Vec<VoterSecret>> = Arc::new(e2e::voters(dir.path()));
    let next_seq = Arc::new(Mutex::new(vec![1u64; voters.len()]));
    let tasks = stream(&server, &voters, &next_seq, &vkey).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGTERM from another thread: `terminate` blocks until the exit, while the clients
    // still run on this runtime.
    let stopping = tokio::task::spawn_blocking(move || server.terminate());
    let mut receipts = Vec::new();
    for t in tasks {
        let (got, end) = t.await.unwrap();
        // Shutting down: the connection closes, or a late ballot is told to come back.
        if let Some((status, code)) = &end {
            assert_eq!(*status, 503, "{code}");
        }
        receipts.extend(got.into_iter().map(|(_, _, v)| v));
    }
    stopping.await.unwrap();
    assert!(!receipts.is_empty());
    let checkpoints: Vec<CheckpointBody> = receipts.iter().map(|r| r.checkpoint.clone()).collect();
    let server = Server::start(&config).await;
    assert_log_extends(&server, &receipts, &checkpoints).await;
}
