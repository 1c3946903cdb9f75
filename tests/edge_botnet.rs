//! The edge against many addresses, each polite on its own (the real `urna serve` binary,
//! real sockets, reduced scale): silent sockets do not delay a new voter, a full table
//! reclaims idle connections for a newcomer, and a source that ignores its 429s is refused
//! at accept until its cool-down ends.
//!
//! Every client binds its own 127.x.y.z address, as a botnet's members and real voters
//! each have their own.

mod e2e;
mod net;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{ballot, voters, write_config, Server, ELECTION};
use http::StatusCode;
use net::*;
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection from `source`.
async fn tcp_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .map_err(|_| std::io::Error::other("connect wait bound"))?
}

/// A TLS connection from `source`, with HTTP/1.1 on it.
async fn h1_from(source: IpAddr, srv: &Server) -> std::io::Result<H1> {
    let tcp = tcp_from(source, srv.addr).await?;
    Ok(H1::over(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await?).await)
}

fn addr(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// The value of one series in the server's `/metrics` (0 when absent).
async fn metric(srv: &Server, series: &str) -> f64 {
    let mut h = srv.h1().await;
    let text = h.send(get("/metrics")).await.unwrap().body;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn start(dir: &Path, limits: &[(&str, &str)]) -> Server {
    Server::start(&write_config(dir, 16, "", limits)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_from_many_addresses_does_not_delay_a_new_voter() {
    let dir = tempfile::tempdir().unwrap();
    // A small table and few handshake slots; the timeouts stay long, so only reclaiming
    // (not a timer) can make room. The kernel's deferred accept is off: this is the path
    // where it is not available (or the silent sockets outnumber its queue).
    let srv = start(
        dir.path(),
        &[
            ("defer_accept_ms", "0"),
            ("max_connections", "200"),
            ("max_tracked_sources", "10000"),
            ("max_handshakes_in_flight", "4"),
            ("first_byte_timeout_ms", "30000"),
            ("first_byte_timeout_min_ms", "30000"),
        ],
    )
    .await;
    // 1.5x the table in silent sockets, each from its own address.
    let mut silent = Vec::new();
    for i in 0..300u32 {
        let source = addr(10, (i / 250) as u8, (i % 250 + 1) as u8);
        silent.push(tcp_from(source, srv.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys = voters(dir.path());
    for (i, voter) in keys.iter().take(5).enumerate() {
        let started = Instant::now();
        let mut h = h1_from(addr(20, 0, i as u8 + 1), &srv).await.unwrap();
        let a = h
            .send(ballot(voter.sign_submission(ELECTION, 1, b"sealed")))
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        // Before the overload manager: 4-33 s (the handshake slots held by silent sockets).
        assert!(took < Duration::from_secs(2), "voter {i} took {took:?}");
    }
    let reclaimed = metric(&srv, "urna_connections_reclaimed_total{reason=\"silent\"}").await;
    assert!(reclaimed >= 100.0, "silent reclaimed: {reclaimed}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deferred_accept_silent_sockets_never_reach_the_table() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped default: the kernel holds connections that have sent nothing (3 s).
    let srv = start(
        dir.path(),
        &[("max_connections", "200"), ("max_tracked_sources", "10000")],
    )
    .await;
    let mut silent = Vec::new();
    for i in 0..300u32 {
        let source = addr(11, (i / 250) as u8, (i % 250 + 1) as u8);
        silent.push(tcp_from(source, srv.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Only the probe's own connection is in the table: the 300 are the kernel's.
    let open = metric(&srv, "urna_connections_open").await;
    assert!(open <= 2.0, "connections in the table: {open}");
    let keys = voters(dir.path());
    let started = Instant::now();
    let mut h = h1_from(addr(21, 0, 1), &srv).await.unwrap();
    let a = h
        .send(ballot(keys[0].sign_submission(ELECTION, 1, b"sealed")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let reclaimed = metric(&srv, "urna_connections_reclaimed_total{reason=\"silent\"}").await;
    assert_eq!(reclaimed, 0.0, "nothing to reclaim: the table never filled");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_reclaims_idle_keep_alive_connections_for_newcomers_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        &[("max_connections", "20"), ("max_tracked_sources", "1000")],
    )
    .await;
    // 30 connections, one request each, then idle: the table holds 20.
    let mut idle = Vec::new();
    for i in 0..30u8 {
        let mut h = h1_from(addr(30, 0, i + 1), &srv)
            .await
            .unwrap_or_else(|e| panic!("connection {i} refused: {e}"));
        assert_eq!(h.status(get("/healthz")).await, StatusCode::OK);
        idle.push(h);
    }
    let keys = voters(dir.path());
    let mut voter = h1_from(addr(31, 0, 1), &srv).await.unwrap();
    let a = voter
        .send(ballot(keys[0].sign_submission(ELECTION, 1, b"sealed")))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    // The oldest went first: the first connection is gone, the last still serves.
    assert!(idle[0].send(get("/healthz")).await.is_err());
    assert_eq!(idle[29].status(get("/healthz")).await, StatusCode::OK);
    let reclaimed = metric(&srv, "urna_connections_reclaimed_total{reason=\"idle\"}").await;
    assert!(reclaimed >= 10.0, "idle reclaimed: {reclaimed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_ignores_429_is_refused_at_accept_until_its_cooldown_ends() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        &[
            ("reads_per_source_per_s", "1"),
            ("reads_burst_per_source", "2"),
            ("penalty_box_strikes", "5"),
            ("penalty_box_window_ms", "10000"),
            ("penalty_box_cooldown_ms", "1500"),
            // The accept path: the kernel's filter has its own test below.
            ("penalty_box_kernel_sources", "0"),
        ],
    )
    .await;
    let hostile = addr(40, 0, 1);
    let mut h = h1_from(hostile, &srv).await.unwrap();
    let mut limited = 0;
    let mut cut = false;
    for _ in 0..20 {
        match h.send(get("/v1/election")).await {
            Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => limited += 1,
            Ok(a) => assert_eq!(a.status, StatusCode::OK),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the connection was never closed");
    // The fifth 429 is the source's last answer: it usually leaves with the close (the
    // answer is written in the same poll that ends the connection), or is cut with it.
    assert!((4..=5).contains(&limited), "{limited} answered 429");
    let boxed_at = Instant::now();
    // Refused at accept: the handshake never completes.
    assert!(h1_from(hostile, &srv).await.is_err());
    // Its neighbour in the same /24 is not.
    let mut neighbour = h1_from(addr(40, 0, 2), &srv).await.unwrap();
    assert_eq!(neighbour.status(get("/v1/election")).await, StatusCode::OK);
    let refused = metric(
        &srv,
        "urna_rejections_total{layer=\"l1\",reason=\"penalty_box\"}",
    )
    .await;
    assert!(refused >= 1.0, "penalty_box refusals: {refused}");
    // After the cool-down it is a client like any other.
    tokio::time::sleep(Duration::from_millis(1_600).saturating_sub(boxed_at.elapsed())).await;
    let mut back = h1_from(hostile, &srv).await.unwrap();
    assert_eq!(back.status(get("/v1/election")).await, StatusCode::OK);
}

/// Has `source` boxed: reads past its budget until the server cuts it.
async fn box_source(source: IpAddr, srv: &Server) {
    let mut h = h1_from(source, srv).await.unwrap();
    for _ in 0..20 {
        if h.send(get("/v1/election")).await.is_err() {
            return;
        }
    }
    panic!("the connection was never closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boxed_source_s_syns_are_dropped_by_the_kernel_until_its_cooldown_ends() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        &[
            ("reads_per_source_per_s", "1"),
            ("reads_burst_per_source", "2"),
            ("penalty_box_strikes", "5"),
            ("penalty_box_window_ms", "10000"),
            ("penalty_box_cooldown_ms", "2500"),
            ("penalty_box_kernel_sources", "16"),
        ],
    )
    .await;
    let hostile = addr(41, 0, 1);
    box_source(hostile, &srv).await;
    let boxed_at = Instant::now();
    // The listener's filter follows the box within its refresh (200 ms).
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(&srv, "urna_penalty_box_kernel_sources").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the kernel filter never took the source"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_before = metric(
        &srv,
        "urna_rejections_total{layer=\"l1\",reason=\"penalty_box\"}",
    )
    .await;
    // Its connect now stalls: the SYN is dropped, there is no reset to retry on, and the
    // server never sees the attempt (no accept, no refusal counted).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(hostile, 0)).unwrap();
    let attempt = tokio::time::timeout(Duration::from_millis(600), socket.connect(srv.addr)).await;
    assert!(
        attempt.is_err(),
        "the boxed source's connect must stall: {attempt:?}"
    );
    let refused_after = metric(
        &srv,
        "urna_rejections_total{layer=\"l1\",reason=\"penalty_box\"}",
    )
    .await;
    assert_eq!(
        refused_before, refused_after,
        "the stalled attempt reached accept"
    );
    // Everyone else, its /24 neighbour included, is served, and not filtered once accepted.
    let mut neighbour = h1_from(addr(41, 0, 2), &srv).await.unwrap();
    for _ in 0..2 {
        assert_eq!(neighbour.status(get("/v1/election")).await, StatusCode::OK);
    }
    assert!(metric(&srv, "urna_penalty_box_kernel_updates_total").await >= 1.0);
    // After the cool-down the filter lets it through again (a connect may wait for one SYN
    // retransmit, 1 s, if it started just before the filter was rewritten).
    tokio::time::sleep(Duration::from_millis(2_700).saturating_sub(boxed_at.elapsed())).await;
    let mut back = h1_from(hostile, &srv).await.unwrap();
    assert_eq!(back.status(get("/v1/election")).await, StatusCode::OK);
    assert_eq!(metric(&srv, "urna_penalty_box_kernel_sources").await, 0.0);
}
