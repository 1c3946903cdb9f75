//! The one seam between the edge (L1–L4) and everything behind it (L5–L7 and the read
//! side). The edge calls it only for requests that passed every edge check; the lead
//! implements it with `src/ballot` and `src/log`.

use std::future::Future;
use std::net::IpAddr;

use bytes::Bytes;

use super::reply::Reply;

/// Everything behind the edge.
pub trait Backend: Send + Sync + 'static {
    /// A ballot body that passed L1–L4: at most `limits.max_body_bytes`, declared
    /// `application/json`. `source` is the client address (after PROXY v2), `received_ms` the
    /// Unix time in milliseconds when its last byte arrived. Returns the full answer: 201/200
    /// with the receipt, or an error reply (mark it [`Reply::penalized`] for a bad signature).
    fn submit(
        &self,
        body: Bytes,
        source: IpAddr,
        received_ms: u64,
    ) -> impl Future<Output = Reply> + Send;

    /// `GET /v1/election`: the manifest and the log's verifier key.
    fn election(&self) -> Reply;

    /// `GET /v1/receipts/<index>`: a fresh receipt for entry `index` against the latest
    /// checkpoint, or 404.
    fn receipt(&self, index: u64) -> impl Future<Output = Reply> + Send;

    /// `GET /log/<path>`: `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`.
    /// The edge has checked the path's characters and length only; unknown paths are the
    /// backend's 404. The edge sets `Cache-Control` from the path unless the reply sets it.
    fn log_read(&self, path: &str) -> impl Future<Output = Reply> + Send;

    /// `GET /readyz`: whether ballots can be taken now (log open, keys loaded).
    fn ready(&self) -> bool;

    /// Ballots accepted by the backend but not yet answered (signature pool + sequencer
    /// queue). Past `limits.shed_queue_depth` the edge sheds new ballots with 503.
    fn queue_depth(&self) -> usize {
        0
    }

    /// Called once on graceful shutdown, after the listeners stopped and in-flight requests
    /// finished (or their grace ran out): the log signs its final checkpoint here.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}
