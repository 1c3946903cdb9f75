//! `urna serve` end to end, against the real binary over real TLS on loopback: ballots of
//! both algorithms and their receipts, every error code from a real request, the revote and
//! replay rules, and the read side (election, checkpoint, tiles, entry bundles, receipts).

mod common;
mod e2e;
mod net;

use e2e::{assert_error, ballot, checkpoint, entries, post, receipt, Server, ELECTION};
use http::StatusCode;
use net::get;
use urna::audit::proof::leaf_hash;
use urna::audit::receipt::verify_receipt;
use urna::ballot::keys::VoterSecret;
use urna::ballot::{decode_entry, Alg, Entry};

/// One election server in a fresh directory: (dir, server, voters).
async fn start(
    voters: u32,
    election: &str,
    limits: &[(&str, &str)],
) -> (tempfile::TempDir, Server, Vec<VoterSecret>) {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), voters, election, limits);
    let server = Server::start(&config).await;
    let voters = e2e::voters(dir.path());
    (dir, server, voters)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A submission whose signature is valid for other content: `payload` with the signature
/// made over `other`.
fn forged(voter: &VoterSecret, seq: u64, payload: &[u8], other: &[u8]) -> String {
    let good: serde_json::Value =
        serde_json::from_str(&voter.sign_submission(ELECTION, seq, payload)).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&voter.sign_submission(ELECTION, seq, other)).unwrap();
    let mut bad = good.clone();
    bad["sig"] = theirs["sig"].clone();
    assert_ne!(bad, good);
    bad.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_of_both_algorithms_get_receipts_that_verify_offline_and_hold_that_ballot() {
    let (_dir, server, voters) = start(8, "", &[]).await;
    let vkey = &server.verifier_key;
    let mut h = server.h1().await;
    let mut sent = Vec::new();
    for alg in [Alg::Ed25519, Alg::P256] {
        let voter = voters
            .iter()
            .find(|v| v.alg() == alg)
            .expect("mixed demo roll");
        let payload = format!("choice for {alg:?}");
        let body = voter.sign_submission(ELECTION, 1, payload.as_bytes());
        let before_ms = now_ms();
        let a = h.send(ballot(body.clone())).await.unwrap();
        let after_ms = now_ms();
        assert_eq!(a.status, StatusCode::CREATED, "{alg:?}: {:?}", a.body);
        let r = receipt(&a);
        let v = verify_receipt(&r, vkey).expect("receipt verifies offline");
        assert_eq!(v.index, r.index);
        let Entry::Ballot(logged) = decode_entry(&v.entry).unwrap() else {
            panic!("entry {} is not a ballot", r.index)
        };
        assert_eq!(
            logged.ballot.to_json(),
            body,
            "the logged ballot is the one sent"
        );
        assert_eq!(logged.ballot.alg(), alg);
        assert_eq!(logged.ballot.payload(), payload.as_bytes());
        logged
            .verify_signature()
            .expect("logged signature verifies");
        // The window is judged on the logged receive time: it must be when we sent it.
        assert!(
            (before_ms..=after_ms).contains(&logged.received_ms),
            "received_ms {} outside {before_ms}..={after_ms}",
            logged.received_ms
        );
        // The same receipt, asked for later by index, still proves the same entry.
        let again = h
            .send(get(&format!("/v1/receipts/{}", r.index)))
            .await
            .unwrap();
        assert_eq!(again.status, StatusCode::OK);
        let again = verify_receipt(&receipt(&again), vkey).unwrap();
        assert_eq!(again.entry, v.entry);
        sent.push(v);
    }
    assert_ne!(sent[0].index, sent[1].index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_side_serves_the_election_a_signed_checkpoint_tiles_and_bundles_holding_the_ballots() {
    let (_dir, server, voters) = start(4, "", &[]).await;
    let vkey = server.verifier_key.clone();
    let mut h = server.h1().await;
    let mut receipts = Vec::new();
    for (i, v) in voters.iter().enumerate() {
        let a = h
            .send(ballot(v.sign_submission(
                ELECTION,
                1,
                format!("b{i}").as_bytes(),
            )))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::CREATED);
        receipts.push(verify_receipt(&receipt(&a), &vkey).unwrap());
    }

    let e = h.send(get("/v1/election")).await.unwrap();
    assert_eq!(e.status, StatusCode::OK);
    let e = e.json();
    assert_eq!(e["election"], ELECTION);
    assert_eq!(e["log"]["verifier_key"], vkey.as_str());
    assert_eq!(e["voters"], 4);
    assert_eq!(e["revote"], "last");

    let (cp, _) = checkpoint(&mut h, &vkey).await;
    assert_eq!(
        cp.size,
        1 + voters.len() as u64,
        "manifest + one ballot each"
    );
    let all = entries(&mut h, cp.size).await;
    let Entry::Manifest(m) = decode_entry(&all[0]).unwrap() else {
        panic!("entry 0 is not the manifest")
    };
    assert_eq!(m.log_verifier_key, vkey);
    for r in &receipts {
        assert_eq!(
            all[r.index as usize], r.entry,
            "bundle holds entry {}",
            r.index
        );
    }
    // The level-0 tile: the leaf hashes of exactly those entries, whose tree is the
    // checkpoint's root.
    let t = h
        .send(get(&format!("/log/tile/0/000.p/{}", cp.size)))
        .await
        .unwrap();
    assert_eq!(t.status, StatusCode::OK);
    let leaves: Vec<[u8; 32]> = all.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(t.body.len(), 32 * leaves.len());
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(&t.body[32 * i..32 * (i + 1)], l, "tile hash {i}");
    }
    assert_eq!(common::mth(&leaves), cp.root);
    // A tile the tree does not have yet.
    let missing = h
        .send(get(&format!("/log/tile/0/000.p/{}", cp.size + 1)))
        .await
        .unwrap();
    assert_error(&missing, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revote_and_replay_rules_hold_end_to_end() {
    let (_dir, server, voters) = start(4, "revote = \"last\"", &[]).await;
    let vkey = &server.verifier_key;
    let mut h = server.h1().await;
    for voter in &voters[..2] {
        let seq1 = voter.sign_submission(ELECTION, 1, b"first");
        let seq2 = voter.sign_submission(ELECTION, 2, b"second");
        let a1 = h.send(ballot(seq1.clone())).await.unwrap();
        assert_eq!(a1.status, StatusCode::CREATED);
        let a2 = h.send(ballot(seq2.clone())).await.unwrap();
        assert_eq!(a2.status, StatusCode::CREATED, "a higher seq is a revote");
        let r2 = receipt(&a2);
        assert!(r2.index > receipt(&a1).index);

        // An old ballot replayed must never undo the revote.
        assert_error(&h.send(ballot(seq1)).await.unwrap(), 409, "stale_seq");
        // The identical resend is idempotent: the same entry, the same index.
        let again = h.send(ballot(seq2)).await.unwrap();
        assert_eq!(again.status, StatusCode::OK);
        let again = receipt(&again);
        assert_eq!((again.index, &again.entry), (r2.index, &r2.entry));
        verify_receipt(&again, vkey).unwrap();
        // The same seq with other content.
        let other = voter.sign_submission(ELECTION, 2, b"something else");
        assert_error(&h.send(ballot(other)).await.unwrap(), 409, "conflict");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_error_gets_its_code_and_status() {
    let (_dir, server, voters) = start(4, "max_ballots_per_voter = 3", &[]).await;
    let mut h = server.h1().await;
    let v = &voters[0];

    // L4, before the body: method, content type, path, declared length.
    assert_error(
        &h.send(get("/v1/ballots")).await.unwrap(),
        405,
        "method_not_allowed",
    );
    let body = v.sign_submission(ELECTION, 1, b"x");
    assert_error(
        &h.send(post("/v1/ballots", "text/plain", body))
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    );
    assert_error(&h.send(get("/v1/ballot")).await.unwrap(), 404, "not_found");
    assert_error(
        &h.send(get("/v1/receipts/1000000")).await.unwrap(),
        404,
        "not_found",
    );
    assert_error(
        &h.send(get("/v1/receipts/01")).await.unwrap(),
        400,
        "malformed",
    );
    let huge = vec![b'{'; 40 * 1024];
    assert_error(&h.send(ballot(huge)).await.unwrap(), 413, "too_large");
    let mut h = server.h1().await; // the edge may close after refusing a body unread

    // L5: shape, size, election, roll.
    assert_error(
        &h.send(ballot(r#"{"election":"e2e-2026"}"#)).await.unwrap(),
        400,
        "malformed",
    );
    assert_error(&h.send(ballot("not json")).await.unwrap(), 400, "malformed");
    let big_payload = v.sign_submission(ELECTION, 1, &vec![b'p'; 20_000]);
    assert!(big_payload.len() < 32 * 1024, "under the body limit");
    assert_error(
        &h.send(ballot(big_payload)).await.unwrap(),
        413,
        "too_large",
    );
    assert_error(
        &h.send(ballot(v.sign_submission("other-2026", 1, b"x")))
            .await
            .unwrap(),
        400,
        "wrong_election",
    );
    let stranger = VoterSecret::ed25519_from_seed(&[7; 32]);
    assert_error(
        &h.send(ballot(stranger.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap(),
        403,
        "not_eligible",
    );

    // L6: a signature over other content, for both algorithms.
    for alg in [Alg::Ed25519, Alg::P256] {
        let voter = voters.iter().find(|v| v.alg() == alg).unwrap();
        let a = h
            .send(ballot(forged(voter, 1, b"mine", b"theirs")))
            .await
            .unwrap();
        assert_error(&a, 422, "bad_signature");
    }

    // The per-voter cap: three ballots, then 429 too_many_ballots.
    let capped = &voters[3];
    for seq in 1..=3 {
        let a = h
            .send(ballot(capped.sign_submission(ELECTION, seq, b"again")))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "seq {seq}");
    }
    let a = h
        .send(ballot(capped.sign_submission(ELECTION, 4, b"again")))
        .await
        .unwrap();
    assert_error(&a, 429, "too_many_ballots");
    assert!(a.header("retry-after").is_some());

    // Nothing refused above reached the log: manifest + the three capped ballots.
    let (cp, _) = checkpoint(&mut h, &server.verifier_key).await;
    assert_eq!(cp.size, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revote_none_refuses_a_second_ballot_but_answers_an_identical_resend() {
    let (_dir, server, voters) = start(2, "revote = \"none\"", &[]).await;
    let mut h = server.h1().await;
    let first = voters[0].sign_submission(ELECTION, 1, b"only");
    let a = h.send(ballot(first.clone())).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let index = receipt(&a).index;
    let again = h.send(ballot(first)).await.unwrap();
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(receipt(&again).index, index);
    for (seq, payload) in [(2, &b"change"[..]), (1, &b"other"[..])] {
        let a = h
            .send(ballot(voters[0].sign_submission(ELECTION, seq, payload)))
            .await
            .unwrap();
        assert_error(&a, 409, "already_voted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_outside_the_window_are_refused() {
    use time::format_description::well_known::Rfc3339;
    // Opens in 30 days (an election further ahead than a year is refused as a typo).
    let opens = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let opens = format!("opens_at = \"{}\"", opens.format(&Rfc3339).unwrap());
    let (_d1, early, v1) = start(2, &opens, &[]).await;
    // Closed long ago: the server starts only when told to serve a closed election.
    let d2 = tempfile::tempdir().unwrap();
    let config = e2e::write_config(d2.path(), 2, "closes_at = \"2001-01-01T00:00:00Z\"", &[]);
    let late = Server::start_with(&config, &["--allow-closed-window"]).await;
    let v2 = e2e::voters(d2.path());
    let a = early
        .h1()
        .await
        .send(ballot(v1[0].sign_submission(ELECTION, 1, b"x")))
        .await
        .unwrap();
    assert_error(&a, 403, "election_not_open");
    let a = late
        .h1()
        .await
        .send(ballot(v2[0].sign_submission(ELECTION, 1, b"x")))
        .await
        .unwrap();
    assert_error(&a, 403, "election_closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_past_its_ballot_rate_gets_429_with_retry_after() {
    let limits = [
        ("ballots_per_source_per_s", "1"),
        ("ballots_burst_per_source", "2"),
    ];
    let (_dir, server, voters) = start(8, "", &limits).await;
    let mut h = server.h1().await;
    let mut statuses = Vec::new();
    let mut limited = None;
    // Bounded: 8 ballots sent back to back; the burst is 2 at 1/s.
    for (i, v) in voters.iter().enumerate() {
        let a = h
            .send(ballot(v.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap();
        statuses.push(a.status.as_u16());
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(&a, 429, "rate_limited");
            let secs: u64 = a
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!(secs >= 1);
            limited.get_or_insert(i);
        }
    }
    assert_eq!(statuses[0], 201, "{statuses:?}");
    let first = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert!(first <= 4, "limited late: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_past_the_shed_depth_get_503_overloaded_with_retry_after() {
    // One ballot in the backend at a time: a second one arriving while the first is being
    // verified or fsynced is shed at the edge.
    let (_dir, server, voters) = start(64, "", &[("shed_queue_depth", "1")]).await;
    let mut conns = Vec::new();
    for _ in 0..16 {
        conns.push(server.h1().await);
    }
    let mut created = 0;
    let mut shed = 0;
    let mut voters = voters.into_iter();
    // Bounded: at most 4 bursts of 16 concurrent ballots.
    for _ in 0..4 {
        let mut tasks = Vec::new();
        for mut h in conns.drain(..) {
            let body = voters.next().unwrap().sign_submission(ELECTION, 1, b"x");
            tasks.push(tokio::spawn(async move {
                let a = h.send(ballot(body)).await.unwrap();
                (h, a)
            }));
        }
        for t in tasks {
            let (h, a) = t.await.unwrap();
            match a.status.as_u16() {
                201 => created += 1,
                503 => {
                    assert_error(&a, 503, "overloaded");
                    assert!(a.header("retry-after").is_some());
                    shed += 1;
                }
                s => panic!("unexpected {s}: {:?}", a.body),
            }
            conns.push(h);
        }
        if created > 0 && shed > 0 {
            break;
        }
    }
    assert!(created > 0 && shed > 0, "created {created}, shed {shed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ballots_on_one_http2_connection_all_get_verifying_receipts() {
    let (_dir, server, voters) = start(16, "", &[]).await;
    let vkey = server.verifier_key.clone();
    let h = net::H2::connect(server.addr, &server.cert).await;
    let mut tasks = Vec::new();
    for v in &voters {
        let mut h = h.clone();
        let body = v.sign_submission(ELECTION, 1, b"over h2");
        tasks.push(tokio::spawn(async move {
            (body.clone(), h.send(ballot(body)).await.unwrap())
        }));
    }
    let mut indices = std::collections::BTreeSet::new();
    for t in tasks {
        let (body, a) = t.await.unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        let v = verify_receipt(&receipt(&a), &vkey).unwrap();
        let Entry::Ballot(logged) = decode_entry(&v.entry).unwrap() else {
            panic!("not a ballot")
        };
        assert_eq!(logged.ballot.to_json(), body);
        assert!(indices.insert(v.index), "index {} given twice", v.index);
    }
    assert_eq!(indices.len(), voters.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_layer_and_reason_in_metrics() {
    let (_dir, server, voters) = start(2, "", &[]).await;
    let mut h = server.h1().await;
    let forged_body = forged(&voters[0], 1, b"a", b"b");
    assert_error(
        &h.send(ballot(forged_body)).await.unwrap(),
        422,
        "bad_signature",
    );
    let stranger = VoterSecret::ed25519_from_seed(&[9; 32]);
    let a = h
        .send(ballot(stranger.sign_submission(ELECTION, 1, b"x")))
        .await
        .unwrap();
    assert_error(&a, 403, "not_eligible");
    let m = h.send(get("/metrics")).await.unwrap();
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&m.body);
    let count = |reason: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("urna_rejections_total{")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    assert_eq!(count("bad_signature"), Some(1.0), "{text}");
    assert_eq!(count("not_eligible"), Some(1.0), "{text}");
    // The log's side: one ballot appended, the tree size, the commit latency.
    let a = h
        .send(ballot(voters[1].sign_submission(ELECTION, 1, b"ok")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let text = String::from_utf8_lossy(&h.send(get("/metrics")).await.unwrap().body).into_owned();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    assert_eq!(value("urna_log_size"), Some(2.0), "{text}");
    assert_eq!(
        value("urna_log_entries_appended_total"),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("urna_log_commit_seconds"), "{text}");
    // Where the ballots' time went: the forged one and the good one were verified (the
    // stranger was refused before L6); only the good one reached the log.
    let stage_count = |stage: &str| {
        let head = format!("urna_ballot_stage_seconds_count{{stage=\"{stage}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(head.as_str()))
            .and_then(|n| n.parse::<f64>().ok())
    };
    assert_eq!(stage_count("verify"), Some(2.0), "{text}");
    assert_eq!(stage_count("log"), Some(1.0), "{text}");
    // Which curve backend verifies Ed25519 (a node built without IFMA shows here).
    let backend = urna::ballot::Ed25519Backend::detect().label();
    let gauge = format!("urna_ed25519_backend{{backend=\"{backend}\"}} 1");
    assert!(text.lines().any(|l| l == gauge), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_submissions_from_one_voter_append_at_most_one_ballot() {
    let (_dir, server, voters) = start(2, "", &[]).await;
    let vkey = server.verifier_key.clone();
    let h = net::H2::connect(server.addr, &server.cert).await;
    // The same ballot eight times at once: one 201, the rest 200 with its index.
    let same = voters[0].sign_submission(ELECTION, 1, b"same");
    // And eight different ballots with one seq: one 201, the rest conflict.
    let racing: Vec<String> = (0..8)
        .map(|i| voters[1].sign_submission(ELECTION, 1, format!("race {i}").as_bytes()))
        .collect();
    let mut tasks = Vec::new();
    for body in std::iter::repeat_n(same, 8).chain(racing) {
        let mut h = h.clone();
        tasks.push(tokio::spawn(
            async move { h.send(ballot(body)).await.unwrap() },
        ));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let (same, racing) = answers.split_at(8);
    let created: Vec<_> = same
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{same:?}");
    let index = receipt(created[0]).index;
    for a in same {
        assert!(a.status == StatusCode::CREATED || a.status == StatusCode::OK);
        assert_eq!(receipt(a).index, index);
        verify_receipt(&receipt(a), &vkey).unwrap();
    }
    let won: Vec<_> = racing
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(won.len(), 1, "{racing:?}");
    for a in racing.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_error(a, 409, "conflict");
    }
    let (cp, _) = checkpoint(&mut server.h1().await, &vkey).await;
    assert_eq!(cp.size, 3, "manifest + one ballot per voter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_its_time_limit_gets_408_request_timeout() {
    use tokio::io::AsyncWriteExt;
    let (_dir, server, _) = start(2, "", &[("body_timeout_ms", "300")]).await;
    let mut tls = net::tls_connect(server.addr, &server.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(
        b"POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"election\":",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    // The rest never comes; the answer must (read_all is bounded by net::WAIT).
    let answer = net::read_all(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_costs_its_source_extra_ballot_tokens() {
    // 10 ballots of burst, 1/s refill, 5 extra tokens per bad signature.
    let limits = [
        ("ballots_per_source_per_s", "1"),
        ("ballots_burst_per_source", "10"),
        ("penalty_tokens", "5"),
    ];
    let (_dir, server, voters) = start(12, "", &limits).await;
    let mut h = server.h1().await;
    let a = h
        .send(ballot(forged(&voters[0], 1, b"a", b"b")))
        .await
        .unwrap();
    assert_error(&a, 422, "bad_signature");
    let began = std::time::Instant::now();
    let mut created = 0;
    let mut limited = 0;
    for v in &voters[1..] {
        let a = h
            .send(ballot(v.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap();
        match a.status.as_u16() {
            201 => created += 1,
            429 => limited += 1,
            s => panic!("unexpected {s}"),
        }
    }
    // Without the penalty 9 of these 11 would fit in the burst; with it, 10 - 1 - 5 = 4,
    // plus one per second of refill since the forged ballot.
    let refill = began.elapsed().as_secs() as usize + 1;
    assert!(
        created >= 4 && created <= 4 + refill,
        "created {created}, limited {limited}, refill {refill}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_flood_is_limited_without_spending_the_ballot_budget() {
    let limits = [
        ("reads_per_source_per_s", "1"),
        ("reads_burst_per_source", "5"),
        ("ballots_per_source_per_s", "1"),
        ("ballots_burst_per_source", "2"),
        // Budgets, not the connection's 429 quota, are what this test counts.
        ("max_refusals_per_connection", "100"),
    ];
    let (_dir, server, voters) = start(2, "", &limits).await;
    let mut h = server.h1().await;
    let began = std::time::Instant::now();
    let mut limited = 0;
    for _ in 0..20 {
        let a = h.send(get("/log/checkpoint")).await.unwrap();
        match a.status.as_u16() {
            200 => {}
            429 => {
                assert_error(&a, 429, "rate_limited");
                limited += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    // 5 of burst, plus one per second of refill.
    let refill = began.elapsed().as_secs() as usize + 1;
    assert!(
        limited >= 15usize.saturating_sub(refill),
        "only {limited} of 20 reads limited"
    );
    for v in &voters {
        let a = h
            .send(ballot(v.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap();
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "ballots keep their own budget"
        );
    }
}
