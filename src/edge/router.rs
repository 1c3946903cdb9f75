//! The HTTP front: routes, and L4's checks in cost order, all before a body is read:
//! route and method (404, 405) → rate limit (429 + Retry-After) → in-flight cap and queue
//! depth (503 + Retry-After) → content type (415) → declared length (413) → the body under a
//! byte limit (413) and a time limit (408) → the backend.
//!
//! Every answer the edge makes itself is the contract's JSON error; every refusal is counted
//! in `urna_rejections_total{layer="l4", reason}`.
//!
//! Beside the API: CORS preflights on the API routes, answered here from the config alone
//! (`cors`), and the voter's pages, static files from the binary (`pages`). Neither reaches
//! the backend nor spends a rate-limit token: each costs what a 404 costs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, IF_NONE_MATCH, RETRY_AFTER,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

/// An edge error answer whose JSON is built at compile time: the 404/405/429/503 paths are
/// what floods hit, so they allocate nothing. `code` must be one of [`super::reply::code`]
/// (checked by `static_errors_are_the_contracts_json`); `msg` holds no `"` or `\`.
macro_rules! static_error {
    ($status:expr, $code:literal, $msg:literal) => {
        Reply::json(
            $status,
            Bytes::from_static(
                concat!("{\"error\":\"", $code, "\",\"message\":\"", $msg, "\"}").as_bytes(),
            ),
        )
        .cache(Cache::NoStore)
    };
}
use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::accept::AcceptGate;
use super::admission::{Admission, Class, Refused};
use super::backend::Backend;
use super::conns::{ConnState, Ended, Phase};
use super::cors::{Cors, CorsRequest};
use super::metrics::{FrontMetrics, L4Reason};
use super::overload::{Overload, Timeout};
use super::pages::{PagesMode, Site};
use super::penalty::Strike;
use super::reply::{Cache, Reply};
use super::source::in_any;
use crate::config::LimitsConfig;

/// Longest path accepted under `/log/`. The longest tlog-tiles path is
/// `tile/entries/x001/x234/067.p/255` style, well under this.
const MAX_LOG_PATH_BYTES: usize = 128;

/// The routes, also the `route` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ballots,
    Election,
    Receipt,
    Log,
    Metrics,
    Healthz,
    Readyz,
    /// `/`, `/vote`, `/verify`, `/assets/…`: the voter's pages (`pages`).
    Page,
    NotFound,
}

impl Route {
    pub fn of(path: &str) -> Route {
        match path {
            "/v1/ballots" => Route::Ballots,
            "/v1/election" => Route::Election,
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/" | "/vote" | "/verify" => Route::Page,
            p if p.starts_with("/v1/receipts/") => Route::Receipt,
            p if p.starts_with("/assets/") => Route::Page,
            p if p.starts_with("/log/") => Route::Log,
            _ => Route::NotFound,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::Ballots => "ballots",
            Route::Election => "election",
            Route::Receipt => "receipts",
            Route::Log => "log",
            Route::Metrics => "metrics",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Page => "pages",
            Route::NotFound => "not_found",
        }
    }

    /// Index into [`super::metrics::ROUTE_LABELS`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn method(self) -> Method {
        match self {
            Route::Ballots => Method::POST,
            _ => Method::GET,
        }
    }

    /// The API a web client on another origin may use (`server.cors_origins`): ballots and
    /// the public reads. Not the operator's routes, not the pages.
    fn cors(self) -> bool {
        matches!(
            self,
            Route::Ballots | Route::Election | Route::Receipt | Route::Log
        )
    }

    /// The methods a route takes, as `Allow` and `Access-Control-Allow-Methods` spell them.
    fn methods(self) -> &'static str {
        if self.method() == Method::POST {
            "POST"
        } else {
            "GET, HEAD"
        }
    }
}

/// What every request of a server shares.
pub struct Front<B> {
    pub backend: Arc<B>,
    pub admission: Admission,
    pub metrics: PrometheusHandle,
    pub counters: FrontMetrics,
    /// Who may read `/metrics`; everyone else gets 404 (the counters tell an attacker how
    /// well the attack works).
    pub metrics_allow: Vec<IpNet>,
    pub max_body_bytes: usize,
    /// L1, for the penalty box that L4's 429s feed.
    pub gate: Arc<AcceptGate>,
    /// The body timeout in force (it shrinks under pressure).
    pub overload: Arc<Overload>,
    pub request_timeout: Duration,
    pub max_requests_per_connection: u32,
    /// 429s one connection gets before it is closed after the last (`limits.max_refusals_per_connection`).
    pub max_refusals_per_connection: u32,
    /// Request bodies being read (`max_bodies_in_flight`): a body still arriving holds one
    /// of these, not an in-flight slot.
    pub bodies: Arc<Semaphore>,
    /// Which other origins' pages may use the API from a browser (none by default).
    pub cors: Cors,
    /// The voter's pages (none by default; `urna serve` sets `server.pages`).
    pub site: Site,
}

impl<B> Front<B> {
    pub fn new(
        backend: Arc<B>,
        limits: &LimitsConfig,
        metrics: PrometheusHandle,
        metrics_allow: Vec<IpNet>,
        overload: Arc<Overload>,
    ) -> Front<B> {
        Front {
            backend,
            admission: Admission::new(limits),
            metrics,
            counters: FrontMetrics::new(),
            metrics_allow,
            max_body_bytes: limits.max_body_bytes.get(),
            gate: AcceptGate::new(limits),
            overload,
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
            max_requests_per_connection: limits.max_requests_per_connection.get(),
            max_refusals_per_connection: limits.max_refusals_per_connection.get(),
            bodies: Arc::new(Semaphore::new(limits.max_bodies_in_flight.get())),
            cors: Cors::default(),
            site: Site::new(PagesMode::None),
        }
    }

    /// Serves the web side too: CORS for `cors`, and the pages of `pages`.
    pub fn with_web(mut self, cors: Cors, pages: PagesMode) -> Front<B> {
        self.cors = cors;
        self.site = Site::new(pages);
        self
    }
}

/// Counts a request in flight on its connection and the server until dropped (also when the
/// client goes away mid-request and hyper drops the future).
struct InFlight<'a>(&'a ConnState, &'a metrics::Gauge);

impl<'a> InFlight<'a> {
    fn new(conn: &'a ConnState, gauge: &'a metrics::Gauge) -> Self {
        conn.request_started();
        gauge.increment(1.0);
        InFlight(conn, gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.request_done();
        self.1.decrement(1.0);
    }
}

/// A body being read: the connection counts as stalled (reclaimable) until it is whole or
/// abandoned, since no ballot is accepted before its last byte.
struct ReadingBody<'a>(&'a ConnState);

impl<'a> ReadingBody<'a> {
    fn new(conn: &'a ConnState) -> Self {
        conn.body_started();
        ReadingBody(conn)
    }
}

impl Drop for ReadingBody<'_> {
    fn drop(&mut self) {
        self.0.body_read();
    }
}

/// hyper's service entry point.
pub async fn handle<B: Backend, T: hyper::body::Body<Data = Bytes>>(
    front: &Front<B>,
    conn: &ConnState,
    req: Request<T>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let _in_flight = InFlight::new(conn, &front.counters.in_flight);
    if conn.next_request() >= front.max_requests_per_connection {
        // The connection task answers with a graceful close: HTTP/1 ends after this
        // answer, HTTP/2 sends GOAWAY and lets open streams finish.
        conn.ask_to_close();
    }
    let start = Instant::now();
    let route = Route::of(req.uri().path());
    let head = req.method() == Method::HEAD;
    let cors = if route.cors() {
        front.cors.classify(req.method(), req.headers())
    } else {
        CorsRequest::Plain
    };
    let asset = match route {
        Route::Page => front.site.find(req.uri().path()),
        _ => None,
    };
    let reply = match &cors {
        CorsRequest::Preflight(origin) => preflight(front, origin.is_some()),
        // Boxed, like the ballot and read paths in `dispatch`: hyper keeps a box the size of
        // this future for each HTTP/1 connection for its whole life, even between requests
        // (4.3 KB unboxed, 0.96 KB now); a request pays one allocation instead.
        _ => Box::pin(dispatch(front, conn, req, route, asset)).await,
    };
    if reply.penalize {
        front.admission.penalize(conn.client);
    }
    front.counters.answered(
        route.index(),
        reply.status.as_u16(),
        start.elapsed().as_secs_f64(),
    );
    let mut response = respond(reply, route, head);
    if route.cors() {
        front
            .cors
            .decorate(response.headers_mut(), cors, route.methods());
    } else if route == Route::Page {
        front.site.decorate(response.headers_mut(), asset);
    }
    Ok(response)
}

/// The answer to a CORS preflight: 204 and the allowed origin, method and header (added by
/// `Cors::decorate`), or 403 when the origin is not in `server.cors_origins` (the browser
/// then refuses to send the request; the code is for whoever debugs it with curl).
fn preflight<B>(front: &Front<B>, allowed: bool) -> Reply {
    if allowed {
        Reply::with_type(StatusCode::NO_CONTENT, "text/plain", Bytes::new()).cache(Cache::NoStore)
    } else {
        front.counters.reject(L4Reason::CorsOrigin);
        origin_not_allowed()
    }
}

fn origin_not_allowed() -> Reply {
    static_error!(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        "this origin may not use the API from a browser (server.cors_origins)"
    )
}

/// Runs `work` (a backend call) under the request timeout. Only the parts of a request that
/// can wait are wrapped: refusals answer at once and need no timer.
async fn bounded<B>(front: &Front<B>, work: impl std::future::Future<Output = Reply>) -> Reply {
    match tokio::time::timeout(front.request_timeout, work).await {
        Ok(reply) => reply,
        Err(_) => {
            front.counters.request_timeout();
            static_error!(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the request took longer than the server allows"
            )
            .retry_after(1)
        }
    }
}

fn respond(reply: Reply, route: Route, head: bool) -> Response<Full<Bytes>> {
    let cache = reply.cache.unwrap_or(Cache::NoStore);
    // A HEAD answer carries the GET answer's length but no body. hyper's HTTP/1 leaves the
    // body out by itself; its HTTP/2 would send it (a protocol error for the client), so
    // the body is dropped here and the length set by hand.
    let length = reply.body.len();
    let body = if head { Bytes::new() } else { reply.body };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(CACHE_CONTROL, cache.header_value());
    if let Some(s) = reply.retry_after_s {
        headers.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static(route.methods()));
    }
    if head {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn refused<B>(front: &Front<B>, conn: &ConnState, r: Refused) -> Reply {
    match r {
        Refused::RateLimited {
            scope,
            retry_after_s,
        } => {
            // A source that keeps coming after its 429s goes in the penalty box: this
            // answer is its last on this connection, and accept refuses it for a while.
            if front.gate.penalty.strike(conn.client, Instant::now()) == Strike::Boxed {
                conn.end(Ended::Penalized);
            } else if conn.next_refusal() >= front.max_refusals_per_connection
                && conn.ask_to_close()
            {
                // A client that honours Retry-After meets a 429 or two on one connection;
                // one that pipelines hundreds of requests (or ignores the header) is
                // closed after this answer, so a botnet of fresh addresses, each under the
                // penalty box's count, cannot make us write thousands of 429s per socket.
                front.counters.reject(L4Reason::RefusalsPerConnection);
            }
            front.counters.reject(if scope == "source" {
                L4Reason::RateLimitedSource
            } else {
                L4Reason::RateLimitedPrefix
            });
            static_error!(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from your address; retry later"
            )
            .retry_after(retry_after_s)
        }
        Refused::Overloaded {
            reason,
            retry_after_s,
        } => {
            front.counters.reject(match reason {
                "queue_depth" => L4Reason::QueueDepth,
                "bodies_in_flight" => L4Reason::BodiesInFlight,
                "reads_in_flight" => L4Reason::ReadsInFlight,
                _ => L4Reason::InFlight,
            });
            static_error!(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is busy; retry later"
            )
            .retry_after(retry_after_s)
        }
    }
}

fn not_found() -> Reply {
    static_error!(StatusCode::NOT_FOUND, "not_found", "no such resource")
}

async fn dispatch<B: Backend, T: hyper::body::Body<Data = Bytes>>(
    front: &Front<B>,
    conn: &ConnState,
    req: Request<T>,
    route: Route,
    asset: Option<usize>,
) -> Reply
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    if route == Route::NotFound {
        front.counters.reject(L4Reason::Path);
        return not_found();
    }
    // HEAD is GET without the body (RFC 9110 §9.3.2; hyper leaves the body out and keeps
    // Content-Length), for mirrors and caches that probe tiles and the checkpoint.
    let head_of_get = req.method() == Method::HEAD && route.method() == Method::GET;
    if req.method() != route.method() && !head_of_get {
        front.counters.reject(L4Reason::Method);
        return static_error!(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this resource"
        );
    }
    let ok = |body: &'static str| Reply::json(StatusCode::OK, body).cache(Cache::NoStore);
    match route {
        Route::Healthz => ok(r#"{"status":"ok"}"#),
        Route::Readyz => {
            if front.backend.ready() {
                ok(r#"{"status":"ready"}"#)
            } else {
                static_error!(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "not ready to take ballots"
                )
            }
        }
        Route::Metrics => {
            if !in_any(&front.metrics_allow, conn.client) {
                front.counters.reject(L4Reason::MetricsForbidden);
                return not_found();
            }
            Reply::with_type(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                super::metrics::render(&front.metrics),
            )
            .cache(Cache::NoStore)
        }
        Route::Ballots => Box::pin(ballot(front, conn, req)).await,
        Route::Election | Route::Receipt | Route::Log => {
            Box::pin(read(front, conn, req, route)).await
        }
        Route::Page => match asset {
            Some(i) => front.site.serve(i, req.headers().get(IF_NONE_MATCH)),
            None => {
                front.counters.reject(L4Reason::Path);
                not_found()
            }
        },
        Route::NotFound => not_found(),
    }
}

async fn read<B: Backend, T>(
    front: &Front<B>,
    conn: &ConnState,
    req: Request<T>,
    route: Route,
) -> Reply {
    if let Err(r) = front.admission.check_rate(Class::Read, conn.client) {
        return refused(front, conn, r);
    }
    let _permit = match front.admission.enter(Class::Read, 0) {
        Ok(p) => p,
        Err(r) => return refused(front, conn, r),
    };
    let path = req.uri().path();
    match route {
        Route::Election => front.backend.election(),
        Route::Receipt => match parse_index(&path["/v1/receipts/".len()..]) {
            Some(index) => bounded(front, front.backend.receipt(index)).await,
            None => {
                front.counters.reject(L4Reason::MalformedIndex);
                static_error!(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "receipt index must be a decimal integer"
                )
            }
        },
        _ => {
            let log_path = &path["/log/".len()..];
            if !valid_log_path(log_path) {
                front.counters.reject(L4Reason::Path);
                return not_found();
            }
            let reply = bounded(front, front.backend.log_read(log_path)).await;
            if reply.cache.is_none() && reply.status == StatusCode::OK {
                let cache = Cache::for_log_path(log_path);
                reply.cache(cache)
            } else {
                reply
            }
        }
    }
}

/// A decimal u64, no sign, no leading zeros (one canonical spelling per index).
fn parse_index(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// tlog-tiles paths use `[a-z0-9./]` only; refuse anything else (and `..`) at the edge.
fn valid_log_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_LOG_PATH_BYTES
        && !p.contains("..")
        && !p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'/')
}

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

async fn ballot<B: Backend, T: hyper::body::Body<Data = Bytes>>(
    front: &Front<B>,
    conn: &ConnState,
    req: Request<T>,
) -> Reply
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    if let Err(r) = front.admission.check_rate(Class::Ballot, conn.client) {
        return refused(front, conn, r);
    }
    // Shed before reading anything when the server is already full (cheap, and the 503
    // tells the client when to come back); the slot itself is taken once the body is in.
    let depth = front.backend.queue_depth();
    front.counters.queue_depth.set(depth as f64);
    if let Err(r) = front.admission.may_enter(Class::Ballot, depth) {
        return refused(front, conn, r);
    }
    if !is_json(req.headers().get(CONTENT_TYPE)) {
        front.counters.reject(L4Reason::ContentType);
        return static_error!(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "ballots are application/json"
        );
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > front.max_body_bytes as u64) {
        front.counters.reject(L4Reason::TooLarge);
        return too_large();
    }
    let body_timeout = front.overload.timeout(Timeout::Body);
    let reading = ReadingBody::new(conn);
    let Some(body_slot) = body_slot(front, body_timeout).await else {
        let r = front.admission.overloaded("bodies_in_flight");
        return refused(front, conn, r);
    };
    let body = Limited::new(req.into_body(), front.max_body_bytes);
    let collected = tokio::time::timeout(body_timeout, body.collect()).await;
    drop(reading);
    let bytes = match collected {
        Err(_) => {
            front.counters.reject(L4Reason::BodyTimeout);
            return static_error!(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body did not arrive in time"
            );
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            front.counters.reject(L4Reason::TooLarge);
            return too_large();
        }
        Ok(Err(_)) => {
            front.counters.reject(L4Reason::BodyError);
            return static_error!(
                StatusCode::BAD_REQUEST,
                "malformed",
                "the body could not be read"
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    drop(body_slot);
    // The body is whole: now it takes an in-flight slot, for as long as the log takes.
    let depth = front.backend.queue_depth();
    let _permit = match front.admission.enter(Class::Ballot, depth) {
        Ok(p) => p,
        Err(r) => return refused(front, conn, r),
    };
    let received_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    bounded(front, front.backend.submit(bytes, conn.client, received_ms)).await
}

/// A slot for reading one body. When all are held, the oldest bodies still arriving are
/// reclaimed (their connections closed, as a full connection table does) and the newcomer
/// waits for a freed slot, at most its body timeout: slow bodies cannot hold the door shut
/// on a ballot that arrives whole.
async fn body_slot<B>(front: &Front<B>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = front.bodies.clone().try_acquire_owned() {
        return Some(slot);
    }
    let reclaimed = front
        .gate
        .table
        .reclaim_phase(Phase::Body, BODY_RECLAIM_BATCH);
    front.gate.count_reclaimed(&reclaimed);
    tokio::time::timeout(wait, front.bodies.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// How many of the oldest bodies one newcomer reclaims when the body slots are full: one,
/// so that reclaiming never costs more bodies than newcomers (a scan of the table's words
/// is a few microseconds).
const BODY_RECLAIM_BATCH: usize = 1;

fn too_large() -> Reply {
    static_error!(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the body is larger than the server accepts"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_errors_are_the_contracts_json() {
        use crate::edge::reply::code;
        let known = [
            code::NOT_FOUND,
            code::METHOD_NOT_ALLOWED,
            code::UNSUPPORTED_MEDIA_TYPE,
            code::TOO_LARGE,
            code::REQUEST_TIMEOUT,
            code::RATE_LIMITED,
            code::OVERLOADED,
            code::NOT_READY,
            code::MALFORMED,
            code::ORIGIN_NOT_ALLOWED,
        ];
        let replies = [
            not_found(),
            too_large(),
            origin_not_allowed(),
            static_error!(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "x y; z"),
        ];
        for r in replies {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert!(known.contains(&v["error"].as_str().unwrap()), "{v}");
            let dynamic = Reply::error(
                r.status,
                v["error"].as_str().unwrap(),
                v["message"].as_str().unwrap(),
            );
            assert_eq!(dynamic.body, r.body, "same bytes as the serde-built error");
        }
    }

    #[test]
    fn route_index_matches_the_metric_labels() {
        for route in [
            Route::Ballots,
            Route::Election,
            Route::Receipt,
            Route::Log,
            Route::Metrics,
            Route::Healthz,
            Route::Readyz,
            Route::Page,
            Route::NotFound,
        ] {
            assert_eq!(
                crate::edge::metrics::ROUTE_LABELS[route.index()],
                route.label()
            );
        }
    }

    #[test]
    fn receipt_index_has_one_spelling() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("1234"), Some(1234));
        assert_eq!(parse_index("01"), None);
        assert_eq!(parse_index("+1"), None);
        assert_eq!(parse_index(""), None);
        assert_eq!(parse_index("99999999999999999999"), None);
    }

    #[test]
    fn log_paths_are_refused_outside_the_tiles_alphabet() {
        assert!(valid_log_path("checkpoint"));
        assert!(valid_log_path("tile/0/x001/234.p/5"));
        assert!(valid_log_path("tile/entries/000"));
        assert!(!valid_log_path("../secret"));
        assert!(!valid_log_path("/etc/passwd"));
        assert!(!valid_log_path("tile/0/%2e%2e"));
        assert!(!valid_log_path(""));
    }

    #[test]
    fn json_content_type_allows_parameters_and_case() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("Application/JSON; charset=utf-8"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(Some(&v("application/jsonx"))));
        assert!(!is_json(None));
    }
}
