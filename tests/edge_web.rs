//! The web side of the edge, over real sockets against `Server` with the in-test backend:
//! CORS for `server.cors_origins`, and the voter's pages and their headers.

mod net;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use net::*;

const ALLOWED: &str = "https://vote.example.org";
const CORS: &str = r#"cors_origins = ["https://vote.example.org", "http://localhost:3000"]"#;

fn preflight(path: &str, origin: &str, method: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("host", "localhost")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn with_origin(mut req: Request<Full<Bytes>>, origin: &str) -> Request<Full<Bytes>> {
    req.headers_mut().insert("origin", origin.parse().unwrap());
    req
}

/// The value of `urna_rejections_total{layer, reason}` (0 when absent).
async fn rejections(h: &mut H1, layer: &str, reason: &str) -> u64 {
    let m = h.send(get("/metrics")).await.unwrap();
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let series = format!("urna_rejections_total{{layer=\"{layer}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn preflight_from_a_listed_origin_is_answered_and_cached_over_h1_and_h2() {
    let (_dir, srv) = serve_double(CORS, "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let mut h2 = H2::connect(srv.addr, &srv.cert).await;
    for a in [
        h1.send(preflight("/v1/ballots", ALLOWED, "POST"))
            .await
            .unwrap(),
        h2.send(preflight("/v1/ballots", ALLOWED, "POST"))
            .await
            .unwrap(),
    ] {
        assert_eq!(a.status, StatusCode::NO_CONTENT);
        assert_eq!(a.header("access-control-allow-origin").unwrap(), ALLOWED);
        assert_eq!(a.header("access-control-allow-methods").unwrap(), "POST");
        assert_eq!(
            a.header("access-control-allow-headers").unwrap(),
            "content-type"
        );
        assert_eq!(a.header("access-control-max-age").unwrap(), "7200");
        assert_eq!(a.header("vary").unwrap(), "origin");
        assert!(a.body.is_empty());
    }
    // The reads a client needs (the manifest, receipts, the log) are preflighted as GET.
    for path in ["/v1/election", "/v1/receipts/3", "/log/checkpoint"] {
        let a = h1
            .send(preflight(path, "http://localhost:3000", "GET"))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            a.header("access-control-allow-methods").unwrap(),
            "GET, HEAD"
        );
    }
    // A preflight never reaches the backend.
    assert_eq!(srv.backend.submits.load(Ordering::SeqCst), 0);
    assert_eq!(srv.backend.reads.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn preflight_from_any_other_origin_is_refused_with_a_stable_code() {
    let (_dir, srv) = serve_double(CORS, "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let before = rejections(&mut h1, "l4", "cors_origin").await;
    for origin in [
        "https://evil.example.org",
        "https://vote.example.org:443",
        "http://vote.example.org",
        "null",
    ] {
        let a = h1
            .send(preflight("/v1/ballots", origin, "POST"))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(a.error_code(), "origin_not_allowed", "{origin}");
        assert!(
            a.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    assert_eq!(rejections(&mut h1, "l4", "cors_origin").await, before + 4);
    srv.stop().await;

    // Without `cors_origins` (the default) every origin is another origin.
    let (_dir, srv) = serve_double("", "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1
        .send(preflight("/v1/ballots", ALLOWED, "POST"))
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::FORBIDDEN, "origin_not_allowed")
    );
    assert!(a.header("access-control-allow-origin").is_none());
    assert!(a.header("vary").is_none(), "no CORS, no Vary");
    srv.stop().await;
}

#[tokio::test]
async fn answers_name_a_listed_origin_and_no_other() {
    let (_dir, srv) = serve_double(CORS, "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1
        .send(with_origin(post_json("/v1/ballots", BALLOT), ALLOWED))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("access-control-allow-origin").unwrap(), ALLOWED);
    assert_eq!(
        a.header("access-control-expose-headers").unwrap(),
        "retry-after"
    );
    assert_eq!(a.header("vary").unwrap(), "origin");

    // Another origin's request is served (CORS is the browser's rule: a program ignores
    // it, and a browser never sends this POST once its preflight was refused), but the
    // answer does not name it, so a browser hides it from that page.
    let a = h1
        .send(with_origin(
            post_json("/v1/ballots", BALLOT),
            "https://evil.example.org",
        ))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CREATED);
    assert!(a.header("access-control-allow-origin").is_none());
    assert_eq!(a.header("vary").unwrap(), "origin");

    // Reads too, errors too (a client must be able to read a 429's code and Retry-After).
    let a = h1
        .send(with_origin(get("/v1/election"), ALLOWED))
        .await
        .unwrap();
    assert_eq!(a.header("access-control-allow-origin").unwrap(), ALLOWED);
    let a = h1
        .send(with_origin(get("/v1/receipts/01"), ALLOWED))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.header("access-control-allow-origin").unwrap(), ALLOWED);

    // Not the operator's routes, not the pages.
    for path in ["/metrics", "/healthz", "/"] {
        let a = h1.send(with_origin(get(path), ALLOWED)).await.unwrap();
        assert!(a.header("access-control-allow-origin").is_none(), "{path}");
        let a = h1.send(preflight(path, ALLOWED, "GET")).await.unwrap();
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    // OPTIONS that is not a preflight is a method the route does not take.
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/ballots")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h1.send(req).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow").unwrap(), "POST");
    srv.stop().await;
}

#[tokio::test]
async fn pages_are_served_with_security_headers_and_revalidated() {
    let (_dir, srv) = serve_double("", "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    let a = h1.send(get("/")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    let csp = a.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(a.header("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(a.header("x-frame-options").unwrap(), "DENY");
    assert_eq!(a.header("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(a.header("cache-control").unwrap(), "no-cache");
    let html = String::from_utf8_lossy(&a.body).into_owned();
    assert!(html.contains("<script type=\"module\" src=\"/assets/status.js\">"));

    // Revalidation: the same version is a 304 without a body.
    let etag = a.header("etag").unwrap();
    let mut req = get("/");
    req.headers_mut()
        .insert("if-none-match", etag.parse().unwrap());
    let a = h1.send(req).await.unwrap();
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.body.is_empty());
    assert_eq!(a.header("etag").unwrap(), etag);

    // Every script a page loads is served as JavaScript (module scripts need the type).
    for path in ["/assets/status.js", "/assets/receipt.js", "/assets/b64.js"] {
        let a = h1.send(get(path)).await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(
            a.header("content-type").unwrap(),
            "text/javascript; charset=utf-8"
        );
    }
    let head = Request::head("/verify")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h1.send(head).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert!(a.header("content-length").unwrap().parse::<u64>().unwrap() > 100);

    // The demo client is not served by default; unknown files are the contract's 404.
    for path in ["/vote", "/assets/vote.js", "/assets/nope.js", "/index.html"] {
        let a = h1.send(get(path)).await.unwrap();
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let a = h1.send(post_json("/", "{}")).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow").unwrap(), "GET, HEAD");
    // Pages cost no read budget and never reach the backend.
    assert_eq!(srv.backend.reads.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn pages_mode_demo_adds_the_voting_client_and_none_serves_nothing() {
    let (_dir, srv) = serve_double("pages = \"demo\"", "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    for path in ["/vote", "/assets/vote.js", "/", "/verify"] {
        assert_eq!(h1.status(get(path)).await, StatusCode::OK, "{path}");
    }
    srv.stop().await;
    let (_dir, srv) = serve_double("pages = \"none\"", "").await;
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    for path in ["/", "/verify", "/assets/urna.css"] {
        assert_eq!(h1.status(get(path)).await, StatusCode::NOT_FOUND, "{path}");
    }
    srv.stop().await;
}
