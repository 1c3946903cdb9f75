//! The Prometheus recorder behind the `metrics` facade, and the handles the edge records on.
//!
//! - [`catalog`] — every series the server exports: type, help, buckets, the label values
//!   present from the start. docs/OPERATIONS.md, "Reading the metrics", lists them for
//!   operators; `deploy/prometheus/alerts.yml` alerts on them.
//! - [`process`] — `urna_build_info` and the `process_*` series.
//!
//! Conventions (Prometheus' own): label values are lowercase (`layer="l6"`); every series has
//! a `# HELP` line; latencies and sizes are histograms with fixed buckets, which sum across
//! servers, never summaries; a counter someone alerts on exists at 0 before its first event.

pub mod catalog;
pub mod process;

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use catalog::Kind;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// A builder with every histogram of the catalog on its fixed buckets.
fn builder() -> PrometheusBuilder {
    let mut b = PrometheusBuilder::new();
    for s in catalog::SERIES {
        if let Kind::Histogram(buckets) = s.kind {
            // Fails only on an empty bucket list; the catalog's are non-empty constants (a
            // unit test holds them to it). Were one empty, the builder starts over and the
            // histograms render as summaries, which the scrape test refuses.
            b = match b.set_buckets_for_metric(Matcher::Full(s.name.into()), buckets) {
                Ok(next) => next,
                Err(_) => PrometheusBuilder::new(),
            };
        }
    }
    b
}

/// Installs the process-wide Prometheus recorder once and returns its handle: every series
/// described, every preset series registered at 0, the build info set. If another recorder
/// was installed first (an embedding program's), the handle renders an empty, private
/// registry rather than failing the server.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle());
            catalog::describe();
            catalog::register();
            process::describe();
            process::publish_build_info();
            handle
        })
        .clone()
}

/// The `/metrics` body: the process series read now, then everything rendered.
pub fn render(handle: &PrometheusHandle) -> String {
    process::collect();
    handle.render()
}

/// Counts one refusal. `(layer, reason)` must be one of [`catalog::REJECTIONS`] (registered
/// at 0 at start; a unit test finds every literal call site in the source).
pub fn reject(layer: &'static str, reason: &'static str) {
    debug_assert!(
        catalog::known_rejection(layer, reason),
        "({layer}, {reason}) is missing from catalog::REJECTIONS"
    );
    metrics::counter!("urna_rejections_total", "layer" => layer, "reason" => reason).increment(1);
}

/// Why L4 (and the request timeout of L3) refused a request: the `reason` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Reason {
    Path,
    Method,
    RateLimitedSource,
    RateLimitedPrefix,
    InFlight,
    ReadsInFlight,
    BodiesInFlight,
    QueueDepth,
    ContentType,
    TooLarge,
    BodyTimeout,
    BodyError,
    MalformedIndex,
    MetricsForbidden,
    CorsOrigin,
    RefusalsPerConnection,
}

impl L4Reason {
    pub const ALL: [L4Reason; 16] = [
        L4Reason::Path,
        L4Reason::Method,
        L4Reason::RateLimitedSource,
        L4Reason::RateLimitedPrefix,
        L4Reason::InFlight,
        L4Reason::ReadsInFlight,
        L4Reason::BodiesInFlight,
        L4Reason::QueueDepth,
        L4Reason::ContentType,
        L4Reason::TooLarge,
        L4Reason::BodyTimeout,
        L4Reason::BodyError,
        L4Reason::MalformedIndex,
        L4Reason::MetricsForbidden,
        L4Reason::CorsOrigin,
        L4Reason::RefusalsPerConnection,
    ];

    pub fn label(self) -> &'static str {
        match self {
            L4Reason::Path => "path",
            L4Reason::Method => "method",
            L4Reason::RateLimitedSource => "rate_limited_source",
            L4Reason::RateLimitedPrefix => "rate_limited_prefix",
            L4Reason::InFlight => "in_flight",
            L4Reason::ReadsInFlight => "reads_in_flight",
            L4Reason::BodiesInFlight => "bodies_in_flight",
            L4Reason::QueueDepth => "queue_depth",
            L4Reason::ContentType => "content_type",
            L4Reason::TooLarge => "too_large",
            L4Reason::BodyTimeout => "body_timeout",
            L4Reason::BodyError => "body_error",
            L4Reason::MalformedIndex => "malformed_index",
            L4Reason::MetricsForbidden => "metrics_forbidden",
            L4Reason::CorsOrigin => "cors_origin",
            L4Reason::RefusalsPerConnection => "refusals_per_connection",
        }
    }
}

/// Routes known to the metrics (the router's `Route` as an index).
pub const ROUTE_LABELS: [&str; 9] = [
    "ballots",
    "election",
    "receipts",
    "log",
    "metrics",
    "healthz",
    "readyz",
    "pages",
    "not_found",
];

/// Status labels: a fixed set, so the label's cardinality is bounded whatever the backend
/// answers.
pub const STATUS_LABELS: [&str; 17] = [
    "200", "201", "400", "403", "404", "405", "408", "409", "413", "415", "422", "429", "500",
    "503", "2xx", "4xx", "5xx",
];

/// Index into [`STATUS_LABELS`].
pub fn status_index(status: u16) -> usize {
    match status {
        200 => 0,
        201 => 1,
        400 => 2,
        403 => 3,
        404 => 4,
        405 => 5,
        408 => 6,
        409 => 7,
        413 => 8,
        415 => 9,
        422 => 10,
        429 => 11,
        500 => 12,
        503 => 13,
        s if s < 400 => 14,
        s if s < 500 => 15,
        _ => 16,
    }
}

/// The `result` label of `urna_request_duration_seconds`: what the client got, in five
/// classes, so a voter's wait for a receipt (`route="ballots",result="ok"`) is read apart
/// from the refusals an attack draws, and cardinality stays at routes × 5.
pub const RESULT_LABELS: [&str; 5] = ["ok", "refused", "rate_limited", "overloaded", "error"];

/// Index into [`RESULT_LABELS`]: 1xx-3xx `ok`; 429 `rate_limited`; other 4xx `refused`
/// (the request was wrong: a bad signature, not on the roll, too large, too slow); 503
/// `overloaded` (shed or timed out: retry later); other 5xx `error` (the server failed).
pub fn result_index(status: u16) -> usize {
    match status {
        429 => 2,
        503 => 3,
        s if s < 400 => 0,
        s if s < 500 => 1,
        _ => 4,
    }
}

/// The router's metric handles, looked up once. A `metrics` macro call builds its key
/// (allocating the label list) and hashes it into the registry on every call; at tens of
/// thousands of refusals a second that is a measurable share of a 429's cost, so the
/// per-request series are resolved here, L4 refusals eagerly (so `rate()` starts at 0),
/// answers lazily (most route × status pairs never occur).
pub struct FrontMetrics {
    rejected: [Counter; L4Reason::ALL.len()],
    request_timeout: Counter,
    responses: Vec<OnceLock<Counter>>,
    /// By route × result.
    duration: Vec<OnceLock<Histogram>>,
    pub in_flight: Gauge,
    pub queue_depth: Gauge,
}

impl Default for FrontMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl FrontMetrics {
    /// Resolves the handles against the installed recorder: call after [`install`].
    pub fn new() -> FrontMetrics {
        FrontMetrics {
            rejected: L4Reason::ALL.map(|r| {
                metrics::counter!("urna_rejections_total", "layer" => "l4", "reason" => r.label())
            }),
            request_timeout: metrics::counter!("urna_rejections_total", "layer" => "l3", "reason" => "request_timeout"),
            responses: (0..ROUTE_LABELS.len() * STATUS_LABELS.len())
                .map(|_| OnceLock::new())
                .collect(),
            duration: (0..ROUTE_LABELS.len() * RESULT_LABELS.len())
                .map(|_| OnceLock::new())
                .collect(),
            in_flight: metrics::gauge!("urna_requests_in_flight"),
            queue_depth: metrics::gauge!("urna_backend_queue_depth"),
        }
    }

    pub fn reject(&self, reason: L4Reason) {
        // `ALL` lists every variant in declaration order, so the discriminant indexes it.
        self.rejected[reason as usize].increment(1);
    }

    pub fn request_timeout(&self) {
        self.request_timeout.increment(1);
    }

    /// Counts one answer of `route` (index into [`ROUTE_LABELS`]) and records its duration
    /// under its result.
    pub fn answered(&self, route: usize, status: u16, seconds: f64) {
        let route = route.min(ROUTE_LABELS.len() - 1);
        let result = result_index(status);
        let status = status_index(status);
        self.responses[route * STATUS_LABELS.len() + status]
            .get_or_init(|| {
                metrics::counter!("urna_responses_total", "route" => ROUTE_LABELS[route], "status" => STATUS_LABELS[status])
            })
            .increment(1);
        self.duration[route * RESULT_LABELS.len() + result]
            .get_or_init(|| {
                metrics::histogram!(
                    "urna_request_duration_seconds",
                    "route" => ROUTE_LABELS[route],
                    "result" => RESULT_LABELS[result]
                )
            })
            .record(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4_reasons_index_their_own_label() {
        for (i, r) in L4Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }

    #[test]
    fn status_labels_match_their_index() {
        for code in [
            200u16, 201, 400, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 503,
        ] {
            assert_eq!(STATUS_LABELS[status_index(code)], code.to_string());
        }
        assert_eq!(STATUS_LABELS[status_index(204)], "2xx");
        assert_eq!(STATUS_LABELS[status_index(418)], "4xx");
        assert_eq!(STATUS_LABELS[status_index(502)], "5xx");
    }

    #[test]
    fn results_tell_a_receipt_from_a_refusal_from_a_shed_ballot() {
        let result = |s: u16| RESULT_LABELS[result_index(s)];
        assert_eq!(result(201), "ok");
        assert_eq!(result(200), "ok");
        assert_eq!(result(304), "ok");
        assert_eq!(result(422), "refused");
        assert_eq!(result(403), "refused");
        assert_eq!(result(408), "refused");
        assert_eq!(result(429), "rate_limited");
        assert_eq!(result(503), "overloaded");
        assert_eq!(result(500), "error");
        assert_eq!(result(502), "error");
    }
}
