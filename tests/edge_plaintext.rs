//! Plain HTTP sent to the TLS port (someone typed `http://host:8443/`) gets a short 400
//! that says to use https, over real sockets against `Server` with the in-test backend.

mod net;

use std::time::{Duration, Instant};

use http::StatusCode;
use net::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The value of `urna_rejections_total{layer, reason}` (0 when absent).
async fn rejections(h: &mut H1, layer: &str, reason: &str) -> u64 {
    let m = h.send(get("/metrics")).await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let series = format!("urna_rejections_total{{layer=\"{layer}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Sends `bytes` over plain TCP to the TLS port and reads what comes back until the close.
async fn plain_to_tls_port(addr: std::net::SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let _ = tcp.write_all(bytes).await;
    let text = read_all(&mut tcp).await;
    let closed = closed_within(&mut tcp, WAIT).await;
    assert!(closed, "the connection is closed after the answer");
    (text, started.elapsed())
}

fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_400_that_says_to_use_https() {
    let (_dir, srv) = serve_double("", "").await;
    let port = srv.addr.port();
    let request = format!(
        "GET /vote HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: a browser\r\nAccept: text/html\r\n\r\n"
    );
    let (text, took) = plain_to_tls_port(srv.addr, request.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    let v = json_body(&text);
    assert_eq!(v["error"], "https_required");
    assert_eq!(
        v["message"],
        format!("this port speaks HTTPS only: use https://localhost:{port}/")
    );
    assert!(took < Duration::from_secs(1), "answered in {took:?}");

    // A Host the server would not echo gets the answer without it.
    let (text, _) = plain_to_tls_port(
        srv.addr,
        b"GET / HTTP/1.1\r\nHost: <script>alert(1)</script>\r\n\r\n",
    )
    .await;
    let v = json_body(&text);
    assert_eq!(v["error"], "https_required");
    assert!(!text.contains("script"), "{text}");

    // TLS on the same port is unaffected, and the 400s were counted.
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    assert!(rejections(&mut h1, "l2", "plain_http").await >= 2);
    srv.stop().await;
}

#[tokio::test]
async fn plain_http_that_never_ends_or_never_stops_is_answered_within_its_bound() {
    let (_dir, srv) = serve_double("", "").await;
    // A head that never ends: answered when the client stops sending, within the bound.
    let (text, took) = plain_to_tls_port(srv.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n").await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(took < Duration::from_secs(4), "took {took:?}");

    // A client that never stops sending: the server reads a bounded amount, answers and
    // closes (the close may reset the client's unread bytes, so only the close is checked).
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let started = Instant::now();
    let junk = vec![b'A'; 64 * 1024];
    let mut sent = 0usize;
    let mut write_failed = false;
    while started.elapsed() < Duration::from_secs(8) && sent < 64 << 20 {
        match tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&junk)).await {
            Ok(Ok(())) => sent += junk.len(),
            Ok(Err(_)) => {
                write_failed = true;
                break;
            }
            // The server stopped reading: it has answered; see whether it closed.
            Err(_) => break,
        }
    }
    assert!(
        write_failed || closed_within(&mut tcp, Duration::from_secs(4)).await,
        "connection still open after {:?} and {sent} bytes",
        started.elapsed()
    );
    assert!(sent < 32 << 20, "the server read {sent} bytes of junk");

    // The server still serves voters.
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn the_plain_listener_still_speaks_plain_http() {
    let (_dir, srv) = serve_double("listen_plain = \"127.0.0.1:0\"", "").await;
    let tcp = TcpStream::connect(srv.plain.unwrap()).await.unwrap();
    let mut h1 = H1::over(tcp).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}
