//! The edge's promises, checked over real TLS sockets on loopback against `Server` with an
//! in-test `DoubleBackend`. One test per limit.

mod net;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use net::*;
use tokio::io::AsyncWriteExt;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn ballots_and_reads_reach_the_backend_over_h1_and_h2() {
    let (_dir, srv) = serve_double("", "").await;
    assert!(
        srv.cert.exists(),
        "certificate generated into the storage dir"
    );

    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.json()["index"], 1);
    assert_eq!(
        srv.backend.last_body.lock().unwrap().as_deref(),
        Some(BALLOT.as_bytes())
    );
    assert_eq!(
        srv.backend.last_source.lock().unwrap().unwrap().to_string(),
        "127.0.0.1"
    );

    let mut h2 = H2::connect(srv.addr, &srv.cert).await;
    let a = h2.send(post_json("/v1/ballots", BALLOT)).await.unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    let a = h2.send(get("/v1/election")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["election"], "test");
    let a = h2.send(get("/v1/receipts/42")).await.unwrap();
    assert_eq!(a.json()["index"], 42);
    let a = h2.send(get("/v1/receipts/042")).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "malformed")
    );

    let full = h1.send(get("/log/tile/0/x001/234")).await.unwrap();
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(
        full.header("cache-control").unwrap(),
        "public, max-age=31536000, immutable"
    );
    let partial = h1.send(get("/log/tile/0/000.p/7")).await.unwrap();
    assert_eq!(
        partial.header("cache-control").unwrap(),
        "public, max-age=1"
    );
    let cp = h1.send(get("/log/checkpoint")).await.unwrap();
    assert_eq!(cp.header("cache-control").unwrap(), "public, max-age=1");
    let bad = h1.send(get("/log/../etc/passwd")).await.unwrap();
    assert_eq!(bad.status, StatusCode::NOT_FOUND);

    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    assert_eq!(h1.status(get("/readyz")).await, StatusCode::OK);
    srv.backend.not_ready.store(true, Ordering::SeqCst);
    let a = h1.send(get("/readyz")).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    );

    let m = h1.send(get("/metrics")).await.unwrap();
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("urna_responses_total"), "{text}");
    assert!(
        text.contains("urna_request_duration_seconds_bucket"),
        "{text}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn metrics_are_hidden_from_addresses_outside_metrics_allow() {
    let (_dir, srv) = serve_double(r#"metrics_allow = ["10.9.0.0/16"]"#, "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(get("/metrics")).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    srv.stop().await;
}

#[tokio::test]
async fn edge_refusals_have_their_status_and_json_code() {
    let dir = tmp();
    let srv = start(
        config(
            dir.path(),
            "",
            "max_body_bytes = 23000\nbody_timeout_ms = 300",
        ),
        DoubleBackend::default(),
    )
    .await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;

    let a = h1.send(get("/nope")).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(a.header("content-type").unwrap(), "application/json");

    let a = h1.send(get("/v1/ballots")).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(a.header("allow").unwrap(), "POST");
    let a = h1.send(post_json("/v1/election", "{}")).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow").unwrap(), "GET, HEAD");
    // HEAD of a GET resource: its status and length, no body; HEAD of the ballot
    // endpoint is refused like any other method but POST.
    let head = |path: &str| {
        Request::head(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let full = h1.send(get("/v1/election")).await.unwrap();
    let a = h1.send(head("/v1/election")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert_eq!(
        a.header("content-length").unwrap(),
        full.body.len().to_string()
    );
    let a = h1.send(head("/v1/ballots")).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow").unwrap(), "POST");
    let mut h2 = H2::connect(srv.addr, &srv.cert).await;
    let a = h2.send(head("/v1/election")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert_eq!(
        a.header("content-length").unwrap(),
        full.body.len().to_string()
    );

    let req = Request::post("/v1/ballots")
        .header("host", "localhost")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let a = h1.send(req).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    // Declared too large: refused on Content-Length, before the body.
    let big = Bytes::from(vec![b'x'; 24_000]);
    let req = Request::post("/v1/ballots")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(big))
        .unwrap();
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(req).await.unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // Undeclared (chunked) and too large: refused while reading, at the byte limit.
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(b"POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 16_000];
    for _ in 0..2 {
        tls.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        tls.write_all(&chunk).await.unwrap();
        tls.write_all(b"\r\n").await.unwrap();
    }
    tls.write_all(b"0\r\n\r\n").await.unwrap();
    let text = read_all(&mut tls).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"too_large\""), "{text}");
    assert_eq!(
        srv.backend.submits.load(Ordering::SeqCst),
        0,
        "nothing refused reached the backend"
    );

    // Slow body: head declares 100 bytes, 10 arrive, then nothing: 408.
    let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"])
        .await
        .unwrap();
    tls.write_all(b"POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"electio")
        .await
        .unwrap();
    let started = Instant::now();
    let text = read_all(&mut tls).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    srv.stop().await;
}

#[tokio::test]
async fn type_and_declared_length_are_refused_before_any_body_byte() {
    let dir = tmp();
    // A long body timeout: an answer that waited for the body would take 5 s.
    let srv = start(
        config(
            dir.path(),
            "",
            "max_body_bytes = 23000\nbody_timeout_ms = 5000",
        ),
        DoubleBackend::default(),
    )
    .await;
    for (head, status, code) in [
        (
            "POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n",
            "415",
            "unsupported_media_type",
        ),
        (
            "POST /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 999999\r\n\r\n",
            "413",
            "too_large",
        ),
        (
            "PUT /v1/ballots HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
            "405",
            "method_not_allowed",
        ),
    ] {
        let mut tls = tls_connect(srv.addr, &srv.cert, &[b"http/1.1"]).await.unwrap();
        tls.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let text = read_all(&mut tls).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(text.contains(&format!("\"{code}\"")), "{text}");
        assert!(started.elapsed() < Duration::from_secs(2), "waited for the body");
    }
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 0);
    srv.stop().await;
}
