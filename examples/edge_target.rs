//! The edge alone, in front of `NullBackend` (answers 201 at once, logs nothing): a target
//! for measuring L1–L4 with a load generator, e.g. the 429 rate for one source far past its
//! limit. Not the real server: `urna serve` wires the real backend.
//!
//! `cargo run --release --example edge_target -- load-tests/nginx/urna-edge.toml`

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use urna::config::Config;
use urna::edge::{Backend, Reply};

/// Stand-in for the ballot layer and the log, for load tests of the edge only.
struct NullBackend;

impl Backend for NullBackend {
    async fn submit(&self, _body: Bytes, _source: IpAddr, _received_ms: u64) -> Reply {
        Reply::json(StatusCode::CREATED, r#"{"index":1}"#)
    }
    fn election(&self) -> Reply {
        Reply::json(StatusCode::OK, "{}")
    }
    async fn receipt(&self, _index: u64) -> Reply {
        Reply::json(StatusCode::OK, "{}")
    }
    async fn log_read(&self, _path: &str) -> Reply {
        Reply::json(StatusCode::OK, "{}")
    }
    fn ready(&self) -> bool {
        true
    }
    async fn shutdown(&self) {}
}

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
