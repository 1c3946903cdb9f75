//! The edge alone, in front of `NullBackend` (answers 201 at once, logs nothing): a target
//! for measuring L1–L4 with a load generator, e.g. the 429 rate for one source far past its
//! limit. Not the real server: `urna serve` wires the real backend.
//!
//! `cargo run --release --example edge_target -- load-tests/nginx/urna-edge.toml`

use std::sync::Arc;

use urna::config::Config;

#[path = "support/null_backend.rs"]
mod null_backend;
use null_backend::NullBackend;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).map(std::path::PathBuf::from);
    let config = Config::load(path.as_deref())?;
    urna::edge::telemetry::init_tracing(config.server.log_format);
    urna::edge::serve(
        &config,
        Arc::new(NullBackend),
        urna::edge::shutdown_signal(),
    )
    .await?;
    Ok(())
}
