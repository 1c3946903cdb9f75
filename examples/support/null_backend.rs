//! `NullBackend`: the edge's backend with nothing behind it (answers 201 at once, logs
//! nothing), shared by `examples/edge_target.rs` and `benches/edge.rs` to measure L1–L4
//! alone. Never the real server: `urna serve` wires `urna::service::Service`.

use std::net::IpAddr;

use bytes::Bytes;
use http::StatusCode;
use urna::edge::{Backend, Reply};

/// Stand-in for the ballot layer and the log, for load tests of the edge only.
pub struct NullBackend;

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
