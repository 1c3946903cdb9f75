//! L3 (HTTP bounds) and L4 (admission), and graceful shutdown, over real TLS sockets.

mod net;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn slowloris_header_is_cut_at_the_header_timeout() {
    let (_dir, srv) = serve_double("", "header_read_timeout_ms = 300").await;
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(b"POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One more header line every 100 ms: never finishes the head.
    let mut closed = false;
    for _ in 0..50 {
        if tls.write_all(b"x-slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut tls, Duration::from_millis(100)).await {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "slow head never cut");
    assert!(took < Duration::from_secs(2), "cut after {took:?}");
    srv.stop().await;
}

#[tokio::test]
async fn oversized_header_is_refused() {
    let (_dir, srv) = serve_double("", "max_header_bytes = 8192").await;
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    let big = "a".repeat(20_000);
    let head = format!("GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-big: {big}\r\n\r\n");
    let _ = tls.write_all(head.as_bytes()).await;
    let text = read_all(&mut tls).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");

    // HTTP/2: a header list over the limit is refused, the connection lives on.
    let mut h2 = H2::connect(srv.addr, &srv.cert).await;
    let req = http::Request::get("/healthz")
        .header("x-big", big)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let a = h2.send(req).await.unwrap();
    assert_eq!(a.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(h2.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let (_dir, srv) = serve_double("", "keep_alive_idle_ms = 300").await;
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(&mut tls).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let started = Instant::now();
    assert!(closed_within(&mut tls, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn idle_http1_connection_lives_for_keep_alive_idle_not_the_header_timeout() {
    // hyper's header timer runs from one answer to the next head; the idle phase is the
    // overload manager's, with its own (longer) timeout.
    let limits = "header_read_timeout_ms = 300\nkeep_alive_idle_ms = 1500";
    let (_dir, srv) = serve_double("", limits).await;
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    assert!(
        !closed_within(&mut tls, Duration::from_millis(800)).await,
        "closed at the header timeout"
    );
    // Still usable, then closed at the keep-alive timeout.
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let n = tls.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let idle = Instant::now();
    assert!(closed_within(&mut tls, Duration::from_secs(5)).await);
    let took = idle.elapsed();
    assert!(
        took >= Duration::from_millis(1_200) && took < Duration::from_secs(4),
        "{took:?} (first idle stretch began {:?} ago)",
        started.elapsed()
    );
    srv.stop().await;
}

#[tokio::test]
async fn connection_is_closed_after_its_request_quota() {
    let (_dir, srv) = serve_double("", "max_requests_per_connection = 3").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    for _ in 0..3 {
        assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    }
    // The third answer ended the connection.
    let mut closed = false;
    for _ in 0..50 {
        if h1.is_closed() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed || h1.send(get("/healthz")).await.is_err());
    srv.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_after_its_quota_of_429s_and_the_rest_go_unanswered() {
    // Each source stays under the penalty box (50 strikes); the connection's own quota ends it.
    let limits =
        "reads_per_source_per_s = 1\nreads_burst_per_source = 2\nmax_refusals_per_connection = 3";
    let (_dir, srv) = serve_double("", limits).await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        match h1.send(get("/log/checkpoint")).await {
            Ok(a) => {
                let last = a.header("connection").as_deref() == Some("close");
                statuses.push(a.status);
                if last {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the third 429 says Connection: close and is the last answer"
    );
    assert!(h1.send(get("/log/checkpoint")).await.is_err(), "closed");
    // A new connection from the same source is welcome (not boxed); its budget is spent.
    let mut again = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(
        again.status(get("/log/checkpoint")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    srv.stop().await;
}

#[tokio::test]
async fn ballot_rate_limit_answers_429_with_retry_after() {
    let limits = "ballots_per_source_per_s = 1\nballots_burst_per_source = 2";
    let (_dir, srv) = serve_double("", limits).await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let statuses: Vec<StatusCode> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let a = h1.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(a.error_code(), "rate_limited");
                let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=2).contains(&retry), "retry-after {retry}");
            }
            v.push(a.status);
        }
        v
    };
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 2);
    // Reads have their own budget: still served.
    assert_eq!(h1.status(get("/v1/election")).await, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn read_rate_limit_answers_429_and_spares_ballots() {
    let limits = "reads_per_source_per_s = 1\nreads_burst_per_source = 3";
    let (_dir, srv) = serve_double("", limits).await;
    let mut h2 = H2::connect(srv.addr, &srv.cert).await;
    let mut limited = 0;
    for _ in 0..10 {
        let a = h2.send(get("/log/checkpoint")).await.unwrap();
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(a.header("retry-after").is_some());
            limited += 1;
        }
    }
    // 3 in the burst; at 1/s at most a token or two refill while the test runs.
    assert!((5..=7).contains(&limited), "{limited} of 10 limited");
    assert_eq!(
        h2.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::CREATED
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_signature_penalty_brings_the_429_sooner() {
    let limits = "ballots_per_source_per_s = 1\nballots_burst_per_source = 6\npenalty_tokens = 4";
    let (_dir, srv) = serve_double("", limits).await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1
        .send(post_json("/v1/ballots", "{\"forged\":true}"))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    // 6 - 1 - 4 = 1 token left: one more request, then 429.
    assert_eq!(
        h1.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        h1.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    srv.stop().await;
}

#[tokio::test]
async fn deep_backend_queue_sheds_ballots_with_503() {
    let (_dir, srv) = serve_double("", "shed_queue_depth = 10").await;
    srv.backend.queue_depth.store(10, Ordering::SeqCst);
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    assert_eq!(a.header("retry-after").unwrap(), "1");
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 0);
    // Reads still pass.
    assert_eq!(h1.status(get("/v1/election")).await, StatusCode::OK);
    srv.backend.queue_depth.store(0, Ordering::SeqCst);
    assert_eq!(
        h1.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::CREATED
    );
    srv.stop().await;
}

#[tokio::test]
async fn in_flight_cap_sheds_with_503_without_reading_the_body() {
    let dir = tmp();
    let hold = Arc::new(Semaphore::new(0));
    let backend = DoubleBackend {
        hold: Some(hold.clone()),
        ..Default::default()
    };
    let srv = start(config(dir.path(), "", "max_in_flight = 2"), backend).await;
    let h2 = H2::connect(srv.addr, &srv.cert).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = h2.clone();
        held.push(tokio::spawn(async move {
            c.send(post_json("/v1/ballots", BALLOT)).await.unwrap()
        }));
    }
    // Both inside the backend.
    for _ in 0..200 {
        if srv.backend.in_submit.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.backend.in_submit.load(Ordering::SeqCst), 2);
    let mut c = h2.clone();
    let a = c.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    assert!(a.header("retry-after").is_some());
    hold.add_permits(2);
    for h in held {
        assert_eq!(h.await.unwrap().status, StatusCode::CREATED);
    }
    srv.stop().await;
}

#[tokio::test]
async fn h2_concurrent_streams_are_capped_per_connection() {
    let dir = tmp();
    let hold = Arc::new(Semaphore::new(0));
    let backend = DoubleBackend {
        hold: Some(hold.clone()),
        ..Default::default()
    };
    let limits = "h2_max_concurrent_streams = 2\nballots_burst_per_source = 50";
    let srv = start(config(dir.path(), "", limits), backend).await;
    // One request first, so the client has the server's SETTINGS and queues past the limit
    // (before SETTINGS, streams over the limit are refused with REFUSED_STREAM instead).
    let h2 = H2::connect(srv.addr, &srv.cert).await;
    assert_eq!(
        h2.clone().send(get("/healthz")).await.unwrap().status,
        StatusCode::OK
    );
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let mut c = h2.clone();
        tasks.push(tokio::spawn(async move {
            c.send(post_json("/v1/ballots", BALLOT)).await.unwrap()
        }));
    }
    for _ in 0..500 {
        if srv.backend.in_submit.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the other three every chance to get in, then check they did not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.backend.in_submit.load(Ordering::SeqCst), 2);
    hold.add_permits(5);
    for t in tasks {
        assert_eq!(t.await.unwrap().status, StatusCode::CREATED);
    }
    assert_eq!(srv.backend.max_in_submit.load(Ordering::SeqCst), 2);
    srv.stop().await;
}

/// Opens `n` streams on one h2 connection and resets each at once; then tries one normal
/// request. Returns whether that request succeeded, and the error the connection ended
/// with (`None`: it lived until we closed it).
async fn reset_streams(srv: &Running, n: usize) -> (bool, Option<h2::Error>) {
    let tls = tls_connect(srv.addr, &srv.cert, &[b"h2"]).await.unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    let conn_task = tokio::spawn(conn);
    let mut client = tokio::time::timeout(WAIT, client.ready())
        .await
        .unwrap()
        .unwrap();
    for _ in 0..n {
        let req = http::Request::get("https://localhost/v1/election")
            .body(())
            .unwrap();
        match client.send_request(req, true) {
            Ok((_resp, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => break,
        }
        match tokio::time::timeout(WAIT, client.clone().ready()).await {
            Ok(Ok(c)) => client = c,
            _ => break,
        }
    }
    let req = http::Request::get("https://localhost/healthz")
        .body(())
        .unwrap();
    let served = match client.send_request(req, true) {
        Ok((resp, _)) => {
            let r = tokio::time::timeout(WAIT, resp).await;
            matches!(r, Ok(Ok(r)) if r.status() == StatusCode::OK)
        }
        Err(_) => false,
    };
    drop(client);
    let ended = tokio::time::timeout(WAIT, conn_task)
        .await
        .expect("connection ends")
        .unwrap();
    (served, ended.err())
}

#[tokio::test]
async fn h2_rapid_reset_flood_loses_its_connection() {
    let limits = "h2_max_pending_accept_reset_streams = 5\nh2_max_local_error_reset_streams = 100000\nreads_burst_per_source = 10000\nreads_burst_per_prefix = 10000\nh2_max_concurrent_streams = 1000";
    let (_dir, srv) = serve_double("", limits).await;
    // Control: a few resets under the limit leave the connection usable.
    let (served, _) = reset_streams(&srv, 3).await;
    assert!(served, "three resets must not cost the connection");
    // A flood: the server ends the connection (GOAWAY ENHANCE_YOUR_CALM, then close).
    let (served, err) = reset_streams(&srv, 2000).await;
    assert!(!served, "the flooding connection was still served");
    let err = err.expect("the server ended the connection with an error");
    assert!(
        err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || err.is_io(),
        "{err:?}"
    );
    srv.stop().await;

    // The same flood against a server configured with a far higher limit keeps its
    // connection: the key above, not some other default, is what cut it.
    let limits = "h2_max_pending_accept_reset_streams = 100000\nh2_max_local_error_reset_streams = 100000\nreads_burst_per_source = 10000\nreads_burst_per_prefix = 10000\nh2_max_concurrent_streams = 1000";
    let (_dir, srv) = serve_double("", limits).await;
    let (_, err) = reset_streams(&srv, 2000).await;
    assert!(
        err.is_none(),
        "a high limit lets the same resets through: {err:?}"
    );
    srv.stop().await;
}

/// What a raw HTTP/2 peer saw after making the server reset streams itself.
#[derive(Debug, Default)]
struct H2Seen {
    /// Error code of the GOAWAY the server sent, if any.
    goaway: Option<u32>,
    /// Whether our PING, sent after the bad streams, was acknowledged.
    ping_acked: bool,
    /// RST_STREAM frames the server sent.
    resets: usize,
}

/// "MadeYouReset" (CVE-2025-8671): `n` requests whose header blocks are malformed (a
/// repeated `:method`), each on a new stream. The server must reset every one itself (a
/// stream error), which costs it work the client never pays for; then a PING. Raw frames:
/// no well-behaved client library sends malformed headers.
async fn induce_local_resets(srv: &Running, n: u32) -> H2Seen {
    use tokio::io::AsyncReadExt;
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"h2"]).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
                                       // HPACK, static table only (no decoder state): :method GET, :method GET (repeated:
                                       // malformed), :scheme https, :path /.
    let block = [0x82, 0x82, 0x87, 0x84];
    for i in 0..n {
        out.extend(frame(0x1, 0x4 | 0x1, 2 * i + 1, &block)); // HEADERS, END_HEADERS|END_STREAM
    }
    out.extend(frame(0x6, 0, 0, b"urnaping")); // PING
    tls.write_all(&out).await.unwrap();
    let mut seen = H2Seen::default();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Bounded: ends at EOF, at the PING's answer, at a GOAWAY, or at the deadline.
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                0x4 if flags & 1 == 0 => {
                    let _ = tls.write_all(&frame(0x4, 1, 0, &[])).await; // SETTINGS ACK
                }
                0x3 => seen.resets += 1,
                0x6 if flags & 1 == 1 && payload == b"urnaping" => seen.ping_acked = true,
                0x7 if payload.len() >= 8 => {
                    seen.goaway = Some(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]))
                }
                _ => {}
            }
        }
        if seen.ping_acked || seen.goaway.is_some() {
            return seen;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return seen,
            Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

#[tokio::test]
async fn h2_streams_the_server_must_reset_itself_cost_the_connection_past_the_limit() {
    const ENHANCE_YOUR_CALM: u32 = 0xb;
    let limits = "h2_max_local_error_reset_streams = 5\nreads_burst_per_source = 10000";
    let (_dir, srv) = serve_double("", limits).await;
    // Control: a few malformed streams under the limit are reset one by one, and the
    // connection still answers.
    let seen = induce_local_resets(&srv, 3).await;
    assert!(seen.ping_acked && seen.goaway.is_none(), "{seen:?}");
    assert_eq!(seen.resets, 3, "{seen:?}");
    // Past the limit: GOAWAY ENHANCE_YOUR_CALM.
    let seen = induce_local_resets(&srv, 50).await;
    assert_eq!(seen.goaway, Some(ENHANCE_YOUR_CALM), "{seen:?}");
    assert!(!seen.ping_acked, "{seen:?}");
    srv.stop().await;

    // The same 50 against a far higher limit: all reset, the connection lives. The key
    // above, not some other default, is what cut it.
    let limits = "h2_max_local_error_reset_streams = 100000\nreads_burst_per_source = 10000";
    let (_dir, srv) = serve_double("", limits).await;
    let seen = induce_local_resets(&srv, 50).await;
    assert!(seen.ping_acked && seen.goaway.is_none(), "{seen:?}");
    assert_eq!(seen.resets, 50, "{seen:?}");
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_ballots_then_calls_the_backend_hook() {
    let dir = tmp();
    let hold = Arc::new(Semaphore::new(0));
    let backend = DoubleBackend {
        hold: Some(hold.clone()),
        ..Default::default()
    };
    let mut srv = start(config(dir.path(), "", ""), backend).await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let inflight =
        tokio::spawn(async move { h1.send(post_json("/v1/ballots", BALLOT)).await.unwrap() });
    for _ in 0..200 {
        if srv.backend.in_submit.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let backend = srv.backend.clone();
    let addr = srv.addr;
    let cert = srv.cert.clone();
    let _ = srv.stop_handle().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No new connections once shutdown began.
    assert!(tls_connect(addr, &cert, &[b"http/1.1"]).await.is_err());
    assert!(
        !backend.shut_down.load(Ordering::SeqCst),
        "hook waits for in-flight requests"
    );
    hold.add_permits(1);
    assert_eq!(inflight.await.unwrap().status, StatusCode::CREATED);
    srv.join().await;
    assert!(backend.shut_down.load(Ordering::SeqCst));
}

#[tokio::test]
async fn slow_bodies_hold_neither_in_flight_slots_nor_the_door_for_a_whole_ballot() {
    // Two in-flight slots, four body slots, bodies given a long time: six clients each send a
    // ballot's head and half its body, then stall. Before body slots, the first two stalled
    // bodies held both in-flight slots and every voter got 503 until their timeout.
    let limits = "max_in_flight = 2\nmax_bodies_in_flight = 4\nbody_timeout_ms = 30000\n\
                  body_timeout_min_ms = 30000";
    let (_dir, srv) = serve_double("", limits).await;
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
            .await
            .unwrap();
        let head = format!(
            "POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            BALLOT.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&BALLOT.as_bytes()[..BALLOT.len() / 2])
            .await
            .unwrap();
        stalled.push(tls);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The 5th and 6th took the body slots of the two oldest, which are closed.
    let mut closed = Vec::new();
    for tls in stalled.iter_mut() {
        closed.push(closed_within(tls, Duration::from_millis(50)).await);
    }
    assert_eq!(
        closed,
        [true, true, false, false, false, false],
        "the two oldest stalled bodies reclaimed, and only they"
    );
    // A whole ballot gets in at once: it takes the oldest stalled body's slot, and an
    // in-flight slot that no stalled body holds.
    let started = Instant::now();
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 1);
    srv.stop().await;
}
