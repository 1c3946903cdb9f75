//! The Prometheus recorder behind the `metrics` facade, and the names the edge records.
//!
//! - `urna_rejections_total{layer, reason}`: every refusal, by layer (l1..l4) and reason.
//! - `urna_responses_total{route, status}`: every answer.
//! - `urna_request_duration_seconds{route}`: histogram, head to answer.
//! - `urna_handshake_duration_seconds`: histogram of finished TLS handshakes.
//! - `urna_connections_open`, `urna_handshakes_in_flight`, `urna_requests_in_flight`: gauges.
//! - `urna_l4_tracked_keys{limiter}`: keys held by each rate limiter (bounded).
//! - `urna_tls_reloads_total{result}`, `urna_penalties_total`, `urna_l1_sources_evicted_total`.

use std::sync::OnceLock;

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
