//! The Prometheus recorder behind the `metrics` facade, and the names the edge records.
//!
//! - `urna_rejections_total{layer, reason}`: every refusal, by layer (l1..l4) and reason.
//! - `urna_responses_total{route, status}`: every answer.
//! - `urna_request_duration_seconds{route}`: histogram, head to answer.
//! - `urna_handshake_duration_seconds`: histogram of finished TLS handshakes.
//! - `urna_connections_open`, `urna_handshakes_in_flight`, `urna_requests_in_flight`: gauges.
//! - `urna_l4_tracked_keys{limiter}`: keys held by each rate limiter (bounded).
//! - `urna_tls_reloads_total{result}`, `urna_penalties_total`, `urna_l1_sources_evicted_total`.
//!
//! The ballot pipeline records its own (`urna_ballot_stage_seconds{stage}`, `urna_log_*`,
//! `urna_verify_batch_size`): docs/OPERATIONS.md lists them all.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for latencies, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle. If another
/// recorder was installed first (an embedding program's), the handle renders an empty,
/// private registry rather than failing the server.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = || {
                let b = PrometheusBuilder::new();
                // Only fails on an empty bucket list; ours is a non-empty constant.
                match b
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
                {
                    Ok(b) => b,
                    Err(_) => PrometheusBuilder::new(),
                }
            };
            builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle())
        })
        .clone()
}

/// Counts one refusal.
pub fn reject(layer: &'static str, reason: &'static str) {
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
    BodiesInFlight,
    QueueDepth,
    ContentType,
    TooLarge,
    BodyTimeout,
    BodyError,
    MalformedIndex,
    MetricsForbidden,
}

impl L4Reason {
    pub const ALL: [L4Reason; 13] = [
        L4Reason::Path,
        L4Reason::Method,
        L4Reason::RateLimitedSource,
        L4Reason::RateLimitedPrefix,
        L4Reason::InFlight,
        L4Reason::BodiesInFlight,
        L4Reason::QueueDepth,
        L4Reason::ContentType,
        L4Reason::TooLarge,
        L4Reason::BodyTimeout,
        L4Reason::BodyError,
        L4Reason::MalformedIndex,
        L4Reason::MetricsForbidden,
    ];

    pub fn label(self) -> &'static str {
        match self {
            L4Reason::Path => "path",
            L4Reason::Method => "method",
            L4Reason::RateLimitedSource => "rate_limited_source",
            L4Reason::RateLimitedPrefix => "rate_limited_prefix",
            L4Reason::InFlight => "in_flight",
            L4Reason::BodiesInFlight => "bodies_in_flight",
            L4Reason::QueueDepth => "queue_depth",
            L4Reason::ContentType => "content_type",
            L4Reason::TooLarge => "too_large",
            L4Reason::BodyTimeout => "body_timeout",
            L4Reason::BodyError => "body_error",
            L4Reason::MalformedIndex => "malformed_index",
            L4Reason::MetricsForbidden => "metrics_forbidden",
        }
    }
}

/// Routes known to the metrics (the router's `Route` as an index).
pub const ROUTE_LABELS: [&str; 8] = [
    "ballots",
    "election",
    "receipts",
    "log",
    "metrics",
    "healthz",
    "readyz",
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

/// The router's metric handles, looked up once. A `metrics` macro call builds its key
/// (allocating the label list) and hashes it into the registry on every call; at tens of
/// thousands of refusals a second that is a measurable share of a 429's cost, so the
/// per-request series are resolved here, L4 refusals eagerly (so `rate()` starts at 0),
/// answers lazily (most route × status pairs never occur).
pub struct FrontMetrics {
    rejected: [Counter; L4Reason::ALL.len()],
    request_timeout: Counter,
    responses: Vec<OnceLock<Counter>>,
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
            duration: (0..ROUTE_LABELS.len()).map(|_| OnceLock::new()).collect(),
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

    /// Counts one answer of `route` (index into [`ROUTE_LABELS`]) and records its duration.
    pub fn answered(&self, route: usize, status: u16, seconds: f64) {
        let route = route.min(ROUTE_LABELS.len() - 1);
        let status = status_index(status);
        self.responses[route * STATUS_LABELS.len() + status]
            .get_or_init(|| {
                metrics::counter!("urna_responses_total", "route" => ROUTE_LABELS[route], "status" => STATUS_LABELS[status])
            })
            .increment(1);
        self.duration[route]
            .get_or_init(|| {
                metrics::histogram!("urna_request_duration_seconds", "route" => ROUTE_LABELS[route])
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
}
