//! Which build runs (`urna_build_info`) and what the process uses (`process_*`).
//!
//! The process series are the Prometheus client libraries' standard names
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`, `process_threads`, ...), read from
//! `/proc/self` by the `metrics-process` collector at each scrape, so dashboards and alerts
//! written for any other service read them unchanged.

use std::sync::OnceLock;

/// The build facts `build.rs` found, lowercased (label values are lowercase throughout).
pub const VERSION: &str = env!("URNA_BUILD_VERSION");
/// The git commit built, or `unknown` outside a checkout.
pub const REVISION: &str = env!("URNA_BUILD_REVISION");
pub const RUSTC: &str = env!("URNA_BUILD_RUSTC");
pub const TARGET: &str = env!("URNA_BUILD_TARGET");

/// Sets `urna_build_info{version, revision, rustc, target}` to 1.
pub fn publish_build_info() {
    metrics::gauge!(
        "urna_build_info",
        "version" => VERSION,
        "revision" => REVISION,
        "rustc" => RUSTC,
        "target" => TARGET
    )
    .set(1.0);
}

fn collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The `# HELP` lines of the process series (to the installed recorder).
pub fn describe() {
    collector().describe();
}

/// Reads `/proc/self` into the process series. About a dozen small reads, plus one
/// directory entry per open file descriptor (10,000 connections: ~10,000 entries, a few
/// milliseconds): cheap at a scrape every few seconds. CPU time is exported in whole
/// seconds (the collector's counter is an integer), which `rate()` over minutes absorbs.
pub fn collect() {
    collector().collect();
}
