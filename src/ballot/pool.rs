//! L6's thread pool: signature verification off the async runtime, batched under load.
//!
//! Verification is the most expensive thing a ballot costs before the log (~20–50 µs of CPU).
//! Run on the tokio workers it would stall accept, TLS and HTTP for every connection; run on
//! `spawn_blocking` it would have no bound. So a fixed set of threads drains one bounded
//! queue: under light load each thread takes one ballot at a time (no added latency); under
//! load the queue fills and each thread takes up to `max_batch` at once, which the batch
//! verifier checks several times cheaper per signature (docs/ARCHITECTURE.md). A full queue
//! refuses at once, so the edge answers 503 instead of letting requests pile up in memory.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::error::BallotError;
use super::verify::{verify_batch, VerifiedBallot};
use super::wire::Ballot;

/// Why the pool gave no verdict (the server's state, not the client's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every queue slot is taken: shed the ballot (503 + Retry-After).
    #[error("the signature queue is full")]
    Full,
    /// The pool's threads are gone (shutdown).
    #[error("the signature pool is stopped")]
    Stopped,
}

struct Job {
    ballot: Ballot,
    reply: oneshot::Sender<Result<VerifiedBallot, BallotError>>,
}

/// A cloneable handle to the verification threads.
#[derive(Clone)]
pub struct VerifierPool {
    tx: SyncSender<Job>,
}

impl VerifierPool {
    /// Starts `threads` verification threads sharing a queue of `queue_depth` ballots; each
    /// takes at most `max_batch` ballots at a time.
    pub fn start(threads: usize, queue_depth: usize, max_batch: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(queue_depth.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let max_batch = max_batch.max(1);
            std::thread::Builder::new()
                .name(format!("urna-verify-{i}"))
                .spawn(move || worker(&rx, max_batch))?;
        }
        Ok(VerifierPool { tx })
    }

    /// Verifies one ballot on the pool. Never waits for queue space.
    pub async fn verify(
        &self,
        ballot: Ballot,
    ) -> Result<Result<VerifiedBallot, BallotError>, PoolError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { ballot, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        rx.await.map_err(|_| PoolError::Stopped)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        {
            // One thread at a time waits on the queue; it takes what is there up to
            // `max_batch`, then lets the next thread in while it verifies.
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => jobs.push(job),
                Err(_) => return,
            }
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let n = jobs.len();
        metrics::histogram!("urna_verify_batch_size").record(n as f64);
        let (ballots, replies): (Vec<Ballot>, Vec<_>) =
            jobs.drain(..).map(|j| (j.ballot, j.reply)).unzip();
        for (verdict, reply) in verify_batch(ballots).into_iter().zip(replies) {
            // The request may have gone (client hung up): nothing to answer.
            let _ = reply.send(verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::keys::VoterSecret;
    use crate::ballot::wire::{parse_submission, Limits};

    fn ballot(seq: u64) -> Ballot {
        let s = VoterSecret::generate_ed25519(&mut rand::thread_rng());
        let json = s.sign_submission("demo", seq, b"payload");
        parse_submission(json.as_bytes(), &Limits::default()).unwrap()
    }

    #[tokio::test]
    async fn verdicts_reach_their_own_ballots_and_a_full_queue_refuses() {
        let pool = VerifierPool::start(2, 64, 16).unwrap();
        let good = ballot(1);
        let mut bad = ballot(2);
        bad.sig[0] ^= 1;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let pool = pool.clone();
            let b = if i % 7 == 3 {
                bad.clone()
            } else {
                good.clone()
            };
            tasks.push(tokio::spawn(async move { (i, pool.verify(b).await) }));
        }
        for t in tasks {
            let (i, verdict) = t.await.unwrap();
            match verdict.unwrap() {
                Err(e) => assert!(i % 7 == 3 && e.code() == "bad_signature", "{i}: {e}"),
                Ok(v) => assert!(i % 7 != 3 && v.ballot() == &good, "{i}"),
            }
        }

        // A queue of 1 that nobody drains: the second ballot is refused at once, and once
        // the receiving side is gone the pool says it is stopped.
        let (tx, rx) = sync_channel(1);
        let pool = VerifierPool { tx };
        let (reply, _) = oneshot::channel();
        pool.tx
            .try_send(Job {
                ballot: good.clone(),
                reply,
            })
            .unwrap();
        assert_eq!(
            pool.verify(good.clone()).await.unwrap_err(),
            PoolError::Full
        );
        drop(rx);
        assert_eq!(pool.verify(good).await.unwrap_err(), PoolError::Stopped);
    }
}
