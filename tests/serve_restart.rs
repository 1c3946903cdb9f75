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
use std::sync::Arc;
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
    let port = e2e::free_port();
    let config = e2e::write_config(dir.path(), port, 4, "", &[]);
    let server = Server::start(&config, port).await;
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

    let server = Server::start(&config, port).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_receipt_survives_sigkill_during_a_stream_of_ballots() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port();
    let config = e2e::write_config(
        dir.path(),
        port,
        VOTERS,
        "max_ballots_per_voter = 100000",
        &[],
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xdead);
    let mut server = Server::start(&config, port).await;
    let vkey = server.verifier_key.clone();
    let voters: Arc<Vec<VoterSecret>> = Arc::new(e2e::voters(dir.path()));
    // Next seq per voter. After a kill, a ballot sent but never answered may or may not be
    // logged, so every voter's next seq goes past anything ever sent.
    let next_seq = Arc::new(std::sync::Mutex::new(vec![1u64; voters.len()]));
    let mut receipts: Vec<VerifiedReceipt> = Vec::new();
    let mut checkpoints: BTreeMap<u64, CheckpointBody> = BTreeMap::new();
    let mut answered_per_round = Vec::new();
    // Highest answered seq per voter.
    let mut last_answered: BTreeMap<usize, u64> = BTreeMap::new();

    for _ in 0..KILLS {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let mut h = server.h1().await;
            let voters = voters.clone();
            let next_seq = next_seq.clone();
            let vkey = vkey.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                // Bounded in count; the kill ends it sooner.
                for i in 0..10_000usize {
                    let who = c + CLIENTS * (i % (voters.len() / CLIENTS));
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
                        Ok(a) => panic!("unexpected {}: {:?}", a.status, a.body),
                        // The server was killed under this request.
                        Err(_) => break,
                    }
                }
                got
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.kill();
        let mut answered = 0;
        for t in tasks {
            let got = t.await.expect("client task");
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

        server = Server::start(&config, port).await;
        assert_eq!(server.verifier_key, vkey);
        let old: Vec<CheckpointBody> = checkpoints.values().cloned().collect();
        let cp = assert_log_extends(&server, &receipts, &old).await;
        checkpoints.entry(cp.size).or_insert(cp);
    }
    eprintln!(
        "answered per round {answered_per_round:?}, checkpoints seen {}, final size {}",
        checkpoints.len(),
        checkpoints.keys().last().unwrap_or(&0)
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
