//! Everything behind the edge for the one election this server runs: L5 (parse, roll,
//! window, voter state), L6 (the signature pool) and L7 (the log), plus the read side.
//! [`Service`] is the edge's [`Backend`](crate::edge::Backend); [`setup`] opens it.
//!
//! - [`preflight`] — everything the start needs, checked before anything is written
//!   (`urna serve --check` prints it).
//! - [`setup`] — first start (demo electorate, log key), the manifest, opening the log.
//! - [`gate`]  — the voter-state check inside the log's single writer.

pub mod gate;
pub mod preflight;
pub mod setup;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::StatusCode;

use crate::ballot::pool::{PoolError, VerifierPool};
use crate::ballot::{parse_submission, BallotError, Limits, Precheck, VoterStates};
use crate::edge::reply::code;
use crate::edge::{Backend, Cache, Reply};
use crate::log::tiles::Resource;
use crate::log::{LogHandle, ReadError, Receipt, SubmitError};
use gate::{BallotGate, Submission};

pub use setup::{open, open_with, Opened, SetupError};

/// The backend the edge calls.
pub struct Service {
    limits: Limits,
    states: Arc<RwLock<VoterStates>>,
    pool: VerifierPool,
    log: LogHandle<BallotGate>,
    /// `GET /v1/election`, built once: it never changes while the server runs.
    election_json: Bytes,
    /// Ballots between the edge and their answer (parse, pool, sequencer): the edge sheds
    /// new ballots past `limits.shed_queue_depth`.
    in_flight: AtomicUsize,
    /// Seconds a client should wait after a 503.
    retry_after_s: u64,
    /// `urna_ballot_stage_seconds{stage}`: where a ballot's time goes, handles made once.
    stages: Stages,
}

/// Histograms of a ballot's time in L6 (queue + verification) and L7 (log queue, group
/// commit, receipt): what an operator reads to see which stage the latency comes from.
pub(crate) struct Stages {
    verify: metrics::Histogram,
    log: metrics::Histogram,
}

impl Stages {
    pub(crate) fn new() -> Self {
        // Handles bind to the recorder installed when they are made: install it first
        // (idempotent; the edge installs the same one).
        crate::edge::metrics::install();
        Stages {
            verify: metrics::histogram!("urna_ballot_stage_seconds", "stage" => "verify"),
            log: metrics::histogram!("urna_ballot_stage_seconds", "stage" => "log"),
        }
    }
}

/// Awaits `stage`, recording how long it took in `histogram`.
async fn timed<T>(
    histogram: &metrics::Histogram,
    stage: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    let out = stage.await;
    histogram.record(started.elapsed().as_secs_f64());
    out
}

/// Counts a ballot in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service {
    /// The log, for the final checkpoint and for tests.
    pub fn log(&self) -> &LogHandle<BallotGate> {
        &self.log
    }

    /// A 503 for a full queue: the signature pool's (`l6`) or the log writer's (`l7`).
    fn overloaded(&self, layer: &'static str, what: &str) -> Reply {
        crate::edge::metrics::reject(layer, "overloaded");
        Reply::error(StatusCode::SERVICE_UNAVAILABLE, code::OVERLOADED, what)
            .retry_after(self.retry_after_s)
    }

    /// A log read off the async workers: entry bundles and receipts read segment files.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LogHandle<BallotGate>) -> T + Send + 'static,
    ) -> Option<T> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || f(&log)).await.ok()
    }
}

/// The contract's error body for a ballot refused by L5, L6 or the sequencer.
fn ballot_error(e: &BallotError) -> Reply {
    let layer = match e {
        BallotError::BadSignature => "l6",
        _ => "l5",
    };
    crate::edge::metrics::reject(layer, e.code());
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let reply = Reply::error(status, e.code(), &e.to_string());
    match e {
        // A bad signature cost us a verification: the source pays extra tokens.
        BallotError::BadSignature => reply.penalized(),
        BallotError::TooManyBallots { .. } => reply.retry_after(3600),
        _ => reply,
    }
}

fn receipt_reply(status: StatusCode, receipt: &Receipt) -> Reply {
    match serde_json::to_vec(receipt) {
        Ok(body) => Reply::json(status, body).cache(Cache::NoStore),
        Err(e) => internal(&format!("encoding the receipt: {e}")),
    }
}

fn internal(message: &str) -> Reply {
    tracing::error!(message, "internal error");
    Reply::error(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message)
}

impl Backend for Service {
    async fn submit(&self, body: Bytes, _source: IpAddr, received_ms: u64) -> Reply {
        let _in_flight = InFlight::enter(&self.in_flight);
        // L5: cheapest first. Parse, then election → roll → window → seq against state.
        let ballot = match parse_submission(&body, &self.limits) {
            Ok(b) => b,
            Err(e) => return ballot_error(&e),
        };
        let pre = {
            let states = self.states.read().unwrap_or_else(|e| e.into_inner());
            states.precheck(&ballot, received_ms)
        };
        match pre {
            Err(e) => return ballot_error(&e),
            // A byte-identical repeat of a logged ballot (verified before it was logged):
            // its receipt, no signature check. If its batch is not checkpointed yet, the
            // sequencer path below answers once it is.
            Ok(Precheck::Repeat(index)) => {
                if let Some(Ok(r)) = self.blocking(move |log| log.receipt(index)).await {
                    return receipt_reply(StatusCode::OK, &r);
                }
            }
            Ok(Precheck::Verify(_)) => {}
        }
        // L6: on the pool, never on this task.
        let ballot = match timed(&self.stages.verify, self.pool.verify(ballot)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return ballot_error(&e),
            Err(PoolError::Full) => return self.overloaded("l6", "signature queue full"),
            Err(PoolError::Stopped) => {
                return Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::NOT_READY,
                    "shutting down",
                )
            }
        };
        // L7: the single writer's final check, append, fsync, checkpoint.
        let submission = Submission {
            ballot,
            received_ms,
        };
        match timed(&self.stages.log, self.log.submit(submission)).await {
            Ok(logged) => {
                let status = if logged.new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                receipt_reply(status, &logged.receipt)
            }
            Err(SubmitError::Rejected(e)) => ballot_error(&e),
            Err(SubmitError::QueueFull) => self.overloaded("l7", "log queue full"),
            Err(SubmitError::Stopped) => Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                code::NOT_READY,
                "the log is stopped",
            ),
            // The store failed a write or fsync: this process must stop (main watches the
            // writer thread) and recover from what is durable. No receipt.
            Err(SubmitError::Poisoned) => internal("the log store failed; restarting"),
            Err(SubmitError::Receipt(e)) => internal(&format!("building the receipt: {e}")),
        }
    }

    fn election(&self) -> Reply {
        Reply::json(StatusCode::OK, self.election_json.clone()).cache(Cache::MaxAge(60))
    }

    async fn receipt(&self, index: u64) -> Reply {
        match self.blocking(move |log| log.receipt(index)).await {
            Some(Ok(r)) => receipt_reply(StatusCode::OK, &r),
            Some(Err(ReadError::NotFound)) => Reply::error(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "no entry at this index in the latest checkpoint",
            ),
            Some(Err(e)) => internal(&format!("reading entry {index}: {e}")),
            None => internal("receipt task failed"),
        }
    }

    async fn log_read(&self, path: &str) -> Reply {
        // The checkpoint and the hash tiles are in memory (the tree's hashes, under a read
        // lock held for microseconds): answered on the worker. Only entry bundles read the
        // segment files and go to the blocking pool. Sending every read there made a flood
        // of checkpoint GETs from 5,000 connections queue behind the pool's threads, hold
        // `max_in_flight` slots for seconds, and shed voters' ballots with 503.
        let read = match Resource::parse(path) {
            None => Some(Err(ReadError::NotFound)),
            Some(res @ Resource::Entries { .. }) => {
                self.blocking(move |log| log.read_resource(res)).await
            }
            Some(res) => Some(self.log.read_resource(res)),
        };
        match read {
            Some(Ok(bytes)) => {
                let ct = if path == "checkpoint" {
                    "text/plain; charset=utf-8"
                } else {
                    "application/octet-stream"
                };
                Reply::with_type(StatusCode::OK, ct, bytes)
            }
            Some(Err(ReadError::NotFound)) => Reply::error(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "no such log resource",
            ),
            Some(Err(e)) => internal(&format!("reading /log/{path}: {e}")),
            None => internal("log read task failed"),
        }
    }

    fn ready(&self) -> bool {
        !self.log.is_poisoned()
    }

    fn queue_depth(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    async fn shutdown(&self) {
        self.log.shutdown().await;
        let cp = self.log.checkpoint();
        tracing::info!(
            size = cp.size,
            "log closed; last checkpoint covers every answered ballot"
        );
    }
}
