//! L1 (accept), L2 (handshake) and PROXY v2, over real loopback sockets.

mod net;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use net::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use urna::edge::proxy::encode_v2;

#[tokio::test]
async fn denied_cidr_is_closed_before_the_handshake() {
    let (_dir, srv) = serve_double("", r#"deny = ["127.0.0.0/8"]"#).await;
    assert!(tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .is_err());
    srv.stop().await;

    let (_dir, srv) = serve_double("", r#"allow = ["10.0.0.0/8"]"#).await;
    assert!(tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .is_err());
    srv.stop().await;
}

/// A double whose ballots wait until the test lets them through: a ballot "in flight".
fn holding() -> (Arc<Semaphore>, DoubleBackend) {
    let hold = Arc::new(Semaphore::new(0));
    let backend = DoubleBackend {
        hold: Some(hold.clone()),
        ..DoubleBackend::default()
    };
    (hold, backend)
}

/// Starts a POST of a ballot on a new connection; resolves when the server answers.
fn post_ballot(addr: SocketAddr, cert: PathBuf) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        let mut h = H1::connect(addr, &cert).await;
        h.send(post_json("/v1/ballots", "{}")).await.unwrap()
    })
}

async fn wait_for_submits(srv: &Running, n: usize) {
    for _ in 0..500 {
        if srv.backend.in_submit.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} ballots never reached the backend");
}

#[tokio::test]
async fn a_full_table_of_ballots_in_flight_refuses_the_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let (hold, backend) = holding();
    let limits = "max_connections = 2\nmax_tracked_sources = 10";
    let srv = start(config(dir.path(), "", limits), backend).await;
    let a = post_ballot(srv.addr, srv.cert.clone());
    let b = post_ballot(srv.addr, srv.cert.clone());
    wait_for_submits(&srv, 2).await;
    assert!(
        tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
            .await
            .is_err(),
        "nothing can be reclaimed: the third connection is refused"
    );
    hold.add_permits(2);
    assert_eq!(a.await.unwrap().status, StatusCode::CREATED);
    assert_eq!(b.await.unwrap().status, StatusCode::CREATED);
    // Answered, the two connections are idle: a newcomer reclaims one.
    let mut c = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(c.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn a_ballot_in_flight_is_never_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let (hold, backend) = holding();
    let limits = "max_connections = 2\nmax_tracked_sources = 10";
    let srv = start(config(dir.path(), "", limits), backend).await;
    let ballot = post_ballot(srv.addr, srv.cert.clone());
    wait_for_submits(&srv, 1).await;
    // Newcomers cycle through the one other slot, each reclaiming the one before it.
    for _ in 0..10 {
        let mut h = H1::connect(srv.addr, &srv.cert).await;
        assert_eq!(h.status(get("/healthz")).await, StatusCode::OK);
    }
    assert!(
        !ballot.is_finished(),
        "the ballot's connection is still waiting"
    );
    hold.add_permits(1);
    let answer = tokio::time::timeout(WAIT, ballot).await.unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 1);
    srv.stop().await;
}

#[tokio::test]
async fn per_source_connection_cap_closes_the_connection_past_it() {
    let (_dir, srv) = serve_double("", "max_connections_per_source = 2").await;
    let _a = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    let _b = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    assert!(tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .is_err());
    srv.stop().await;
}

#[tokio::test]
async fn per_source_new_connection_rate_closes_the_burst_past_it() {
    let limits = "new_connections_per_source_per_s = 1\nnew_connections_burst = 3";
    let (_dir, srv) = serve_double("", limits).await;
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(
            tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
                .await
                .is_ok(),
        );
    }
    // Three in the burst; at 1/s, a slow machine may refill one token during the test.
    assert_eq!(results[..3], [true, true, true]);
    assert!(results[3..].contains(&false), "{results:?}");
    srv.stop().await;
}

#[tokio::test]
async fn silent_client_is_dropped_at_the_first_byte_timeout_and_a_stalled_hello_at_the_handshake_timeout(
) {
    // Without the kernel's deferred accept: the server's own first-byte timer.
    let limits = "defer_accept_ms = 0\nfirst_byte_timeout_ms = 300\nhandshake_timeout_ms = 600";
    let (_dir, srv) = serve_double("", limits).await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A client that starts the handshake and stalls is dropped at the handshake timeout,
    // counted from its first byte.
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn with_deferred_accept_a_silent_client_lives_the_deferral_then_the_first_byte_timeout() {
    // The kernel holds it 1 s (SYN-ACK retransmits), then hands it over, and the server's
    // first-byte timeout (300 ms) ends it: bounded either way.
    let limits = "defer_accept_ms = 1000\nfirst_byte_timeout_ms = 300";
    let (_dir, srv) = serve_double("", limits).await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut tcp, Duration::from_secs(10)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // A client that talks at once is not deferred at all.
    assert!(tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .is_ok());
    srv.stop().await;
}

#[tokio::test]
async fn silent_and_half_sent_hellos_hold_no_handshake_slot() {
    // One handshake slot, and timeouts far longer than the test: before the overload
    // manager, the silent socket below held the only slot for 5 s and the voter waited.
    let limits =
        "max_handshakes_in_flight = 1\nhandshake_timeout_ms = 5000\nfirst_byte_timeout_ms = 5000";
    let (_dir, srv) = serve_double("", limits).await;
    let _silent = TcpStream::connect(srv.addr).await.unwrap();
    let mut half = TcpStream::connect(srv.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut voter = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(voter.status(get("/healthz")).await, StatusCode::OK);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    srv.stop().await;
}

async fn proxied(addr: SocketAddr, client: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let client: SocketAddr = client.parse().unwrap();
    // PROXY v2 carries one address family: announce a destination of the client's.
    let destination: SocketAddr = if client.is_ipv6() {
        "[::1]:443"
    } else {
        "127.0.0.1:443"
    }
    .parse()
    .unwrap();
    let header = encode_v2(client, destination);
    tcp.write_all(&header).await.unwrap();
    tcp
}

#[tokio::test]
async fn proxy_v2_from_a_trusted_peer_sets_the_client_address_for_every_limit() {
    let server = r#"trusted_proxies = ["127.0.0.0/8"]"#;
    let limits = r#"deny = ["203.0.113.0/24"]"#;
    let (_dir, srv) = serve_double(server, limits).await;

    // The announced client is what the backend sees.
    let tcp = proxied(srv.addr, "198.51.100.7:40000").await;
    let mut h1 = H1::over(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await.unwrap()).await;
    assert_eq!(
        h1.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        srv.backend.last_source.lock().unwrap().unwrap().to_string(),
        "198.51.100.7"
    );

    // The announced client is what L1 judges: a denied client behind a trusted proxy is closed.
    let tcp = proxied(srv.addr, "203.0.113.9:40000").await;
    assert!(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await.is_err());

    // A trusted peer without the header is closed (proxy_protocol_required defaults true).
    assert!(tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .is_err());
    srv.stop().await;
}

#[tokio::test]
async fn proxy_v2_from_an_untrusted_peer_closes_the_connection() {
    let server = r#"trusted_proxies = ["10.0.0.0/8"]
listen_plain = "127.0.0.1:0""#;
    let (_dir, srv) = serve_double(server, "").await;
    let tcp = proxied(srv.addr, "198.51.100.7:40000").await;
    assert!(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await.is_err());

    // On the plain listener too: no answer, just a close.
    let plain = srv.plain.unwrap();
    let mut tcp = proxied(plain, "198.51.100.7:40000").await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(&mut tcp).await;
    assert!(text.is_empty(), "{text}");

    // The same listener serves an honest plain request.
    let tcp = TcpStream::connect(plain).await.unwrap();
    let mut h1 = H1::over(tcp).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn proxy_v2_is_optional_when_not_required() {
    let server = "trusted_proxies = [\"127.0.0.0/8\"]\nproxy_protocol_required = false";
    let (_dir, srv) = serve_double(server, "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    let tcp = proxied(srv.addr, "[2001:db8::5]:1").await;
    let mut h1 = H1::over(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await.unwrap()).await;
    assert_eq!(
        h1.status(post_json("/v1/ballots", BALLOT)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        srv.backend.last_source.lock().unwrap().unwrap().to_string(),
        "2001:db8::5"
    );
    srv.stop().await;
}
