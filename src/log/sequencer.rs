//! The sequencer: one writer thread fed by a bounded queue, committing in groups, and the
//! cheap, cloneable [`LogHandle`] every request task uses to submit and to read.

use super::config::LogConfig;
use super::gate::{Admission, Gate};
use super::key::LogKey;
use super::note::{tlog_proof, SignedCheckpoint};
use super::receipt::Receipt;
use super::storage::{FsStorage, Storage};
use super::store::{LogError, ReadError, Shared, Writer};
use super::tiles::Resource;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tlog_tiles::Hash;
use tokio::sync::oneshot;

/// A logged item: its index, whether this submission appended it, and its receipt.
#[derive(Debug, Clone)]
pub struct Logged {
    pub index: u64,
    /// `false` when the gate answered `Existing`: nothing was appended.
    pub new: bool,
    pub receipt: Receipt,
}

/// Why a submission got no receipt.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError<R: std::fmt::Debug> {
    /// The gate refused the item (the client's fault: 4xx).
    #[error("rejected: {0:?}")]
    Rejected(R),
    /// The queue is full: fail fast, the server answers 503 with Retry-After.
    #[error("the log's queue is full")]
    QueueFull,
    /// A write or fsync failed; nothing more will be logged until the process restarts.
    #[error("the log store is poisoned")]
    Poisoned,
    /// The log was shut down.
    #[error("the log is stopped")]
    Stopped,
    /// The entry was logged but its receipt could not be built (a server fault).
    #[error("building the receipt: {0}")]
    Receipt(ReadError),
}

/// What the writer tells a waiter once its batch is durable and checkpointed.
struct Committed {
    index: u64,
    /// Whether this submission appended the entry.
    new: bool,
    /// The logged bytes of a new entry (an `Existing` one is read back from the segment).
    entry: Option<Vec<u8>>,
    checkpoint: Arc<SignedCheckpoint>,
}

type Reply<R> = Result<Committed, SubmitError<R>>;

enum Msg<G: Gate> {
    Submit(G::Item, oneshot::Sender<Reply<G::Reject>>),
    Shutdown(oneshot::Sender<()>),
}

struct Inner<G: Gate> {
    tx: SyncSender<Msg<G>>,
    shared: Arc<Shared>,
}

/// The handle every request task shares. Cloning is cheap (one `Arc`).
pub struct LogHandle<G: Gate> {
    inner: Arc<Inner<G>>,
}

impl<G: Gate> Clone for LogHandle<G> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// Opening a log.
pub struct Log;

impl Log {
    /// Opens the log in `cfg.dir` (see [`Log::open_with`]).
    pub fn open<G: Gate>(
        cfg: LogConfig,
        key: LogKey,
        gate: G,
        genesis: impl FnOnce() -> Vec<u8>,
    ) -> Result<(LogHandle<G>, JoinHandle<()>), LogError> {
        let storage = FsStorage::open(&cfg.dir).map_err(|source| LogError::Io {
            what: "opening the log directory",
            source,
        })?;
        Self::open_with(Arc::new(storage), cfg, key, gate, genesis)
    }

    /// Recovers the log from `storage` (blocking: run it before serving, or in
    /// `spawn_blocking`), appends `genesis()` as entry 0 if the log is empty, and starts the
    /// writer thread. The thread ends after [`LogHandle::shutdown`], after the store is
    /// poisoned, or when every handle is dropped.
    pub fn open_with<G: Gate>(
        storage: Arc<dyn Storage>,
        cfg: LogConfig,
        key: LogKey,
        mut gate: G,
        genesis: impl FnOnce() -> Vec<u8>,
    ) -> Result<(LogHandle<G>, JoinHandle<()>), LogError> {
        let writer = Writer::open(storage, &cfg, key, &mut gate, genesis)?;
        let shared = writer.shared.clone();
        let (tx, rx) = sync_channel(cfg.queue_depth);
        let batch = BatchRule {
            max_entries: cfg.batch_max_entries,
            delay: Duration::from_micros(cfg.batch_delay_us),
        };
        let thread = std::thread::Builder::new()
            .name("urna-log-writer".into())
            .spawn(move || run(writer, gate, rx, batch))
            .map_err(|source| LogError::Io {
                what: "starting the writer thread",
                source,
            })?;
        Ok((
            LogHandle {
                inner: Arc::new(Inner { tx, shared }),
            },
            thread,
        ))
    }
}

impl<G: Gate> LogHandle<G> {
    /// Submits one item; resolves once it is durable and covered by a signed checkpoint (or
    /// refused). Never waits for queue space: a full queue is [`SubmitError::QueueFull`].
    pub async fn submit(&self, item: G::Item) -> Result<Logged, SubmitError<G::Reject>> {
        if self.inner.shared.poisoned.load(Ordering::SeqCst) {
            return Err(SubmitError::Poisoned);
        }
        let (tx, rx) = oneshot::channel();
        match self.inner.tx.try_send(Msg::Submit(item, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("urna_log_queue_full_total").increment(1);
                return Err(SubmitError::QueueFull);
            }
            Err(TrySendError::Disconnected(_)) => return Err(self.stopped()),
        }
        let done = match rx.await {
            Ok(r) => r?,
            Err(_) => return Err(self.stopped()),
        };
        let entry = match done.entry {
            Some(e) => e,
            None => self
                .inner
                .shared
                .entry(done.index)
                .map_err(SubmitError::Receipt)?,
        };
        let receipt = self
            .receipt_against(done.index, &entry, &done.checkpoint)
            .map_err(SubmitError::Receipt)?;
        Ok(Logged {
            index: done.index,
            new: done.new,
            receipt,
        })
    }

    fn stopped(&self) -> SubmitError<G::Reject> {
        if self.inner.shared.poisoned.load(Ordering::SeqCst) {
            SubmitError::Poisoned
        } else {
            SubmitError::Stopped
        }
    }

    fn receipt_against(
        &self,
        index: u64,
        entry: &[u8],
        cp: &SignedCheckpoint,
    ) -> Result<Receipt, ReadError> {
        let proof = self
            .inner
            .shared
            .read()
            .tree
            .inclusion(index, cp.size)
            .map_err(|e| ReadError::Failed(e.to_string()))?;
        Ok(Receipt::new(
            index,
            entry,
            tlog_proof(index, &proof, &cp.note),
        ))
    }

    /// A fresh receipt for entry `index` against the latest checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt, ReadError> {
        let cp = self.inner.shared.checkpoint();
        if index >= cp.size {
            return Err(ReadError::NotFound);
        }
        let entry = self.inner.shared.entry(index)?;
        self.receipt_against(index, &entry, &cp)
    }

    /// The bytes of entry `index` (below the latest checkpoint).
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, ReadError> {
        self.inner.shared.entry(index)
    }

    /// The latest signed checkpoint note, as served at `/log/checkpoint`.
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.inner.shared.checkpoint()
    }

    /// Size of the latest signed checkpoint.
    pub fn size(&self) -> u64 {
        self.inner.shared.checkpoint().size
    }

    /// A read-side resource by its path after `/log/`: `checkpoint`,
    /// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`. `NotFound` for anything else,
    /// and for partial tiles of sizes never checkpointed.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let res = Resource::parse(path).ok_or(ReadError::NotFound)?;
        self.read_resource(res)
    }

    /// [`Self::read`] of a parsed path. Only `Resource::Entries` reads the segment files;
    /// the checkpoint and hash tiles come from memory.
    pub fn read_resource(&self, res: Resource) -> Result<Vec<u8>, ReadError> {
        self.inner.shared.resource(res)
    }

    /// RFC 6962 inclusion proof of `index` in the tree of `size` leaves (at most the latest
    /// checkpoint's size).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        let st = self.inner.shared.read();
        if size > st.checkpoint.size {
            return Err(ReadError::NotFound);
        }
        st.tree
            .inclusion(index, size)
            .map_err(|_| ReadError::NotFound)
    }

    /// RFC 6962 consistency proof from size `old` to size `new`, where `1 <= old <= new <=`
    /// the latest checkpoint's size. Every such size is a prefix of a signed tree, so a proof
    /// from a checkpoint signed before a restart is available too.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, ReadError> {
        let st = self.inner.shared.read();
        if new > st.checkpoint.size {
            return Err(ReadError::NotFound);
        }
        st.tree
            .consistency(old, new)
            .map_err(|_| ReadError::NotFound)
    }

    /// The verifier key: `name+hex(id)+base64(0x01 ‖ key)`.
    pub fn verifier_key(&self) -> String {
        self.inner.shared.key.verifier_key().to_owned()
    }

    /// Bytes of memory the log holds per its structures (hashes and indexes), not counting
    /// the queue or the segment files.
    pub fn memory_bytes(&self) -> usize {
        let st = self.inner.shared.read();
        st.tree.memory_bytes()
            + st.offsets.capacity() * 4
            + st.segments.capacity() * 8
            + st.checkpointed_sizes.capacity() * 8
    }

    /// Whether a write or fsync failed.
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poisoned.load(Ordering::SeqCst)
    }

    /// Drains the queue (every item queued before this call is committed or refused), then
    /// stops the writer. Later submissions fail with `Stopped`. The last batch's checkpoint is
    /// the final one: every batch is checkpointed before it is answered.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        // The queue may be full: a blocking send would stall the runtime, so wait in a
        // blocking thread. Bounded by the writer draining the queue.
        let sender = self.inner.tx.clone();
        let sent = tokio::task::spawn_blocking(move || sender.send(Msg::Shutdown(tx)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = rx.await;
        }
    }
}

/// How the writer forms batches.
struct BatchRule {
    max_entries: usize,
    delay: Duration,
}

/// Collects the next batch: blocks for its first message, then takes what is queued, waiting
/// at most `delay` for more (zero: no wait). Returns `None` when every handle is gone.
fn next_batch<G: Gate>(rx: &Receiver<Msg<G>>, rule: &BatchRule) -> Option<(Vec<Msg<G>>, bool)> {
    let first = rx.recv().ok()?;
    let mut msgs = vec![first];
    let deadline = Instant::now() + rule.delay;
    let mut disconnected = false;
    // Bounded by max_entries and by the deadline.
    while msgs.len() < rule.max_entries {
        if matches!(msgs.last(), Some(Msg::Shutdown(_))) {
            break;
        }
        match rx.try_recv() {
            Ok(m) => msgs.push(m),
            Err(TryRecvError::Disconnected) => {
                disconnected = true;
                break;
            }
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(m) => msgs.push(m),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
        }
    }
    Some((msgs, disconnected))
}

enum Pending {
    New(usize),
    Existing(u64),
}

/// The writer thread's loop.
fn run<G: Gate>(mut writer: Writer, mut gate: G, rx: Receiver<Msg<G>>, rule: BatchRule) {
    // Bounded by the queue: it ends when every handle is dropped, on shutdown, or on poison.
    while let Some((msgs, disconnected)) = next_batch(&rx, &rule) {
        let mut entries: Vec<Vec<u8>> = Vec::new();
        let mut waiters: Vec<(oneshot::Sender<Reply<G::Reject>>, Pending)> = Vec::new();
        let mut shutdown = None;
        let mut broken = None;
        for m in msgs {
            match m {
                Msg::Shutdown(done) => shutdown = Some(done),
                Msg::Submit(item, reply) => {
                    let next = writer.size() + entries.len() as u64;
                    match gate.admit(item, next) {
                        Admission::Append(e) => {
                            waiters.push((reply, Pending::New(entries.len())));
                            entries.push(e);
                        }
                        Admission::Existing(i) if i < next => {
                            waiters.push((reply, Pending::Existing(i)));
                        }
                        Admission::Existing(i) => {
                            broken = Some(format!("Existing({i}) but next index is {next}"));
                            let _ = reply.send(Err(SubmitError::Poisoned));
                        }
                        Admission::Reject(r) => {
                            let _ = reply.send(Err(SubmitError::Rejected(r)));
                        }
                    }
                }
            }
        }
        let base = writer.size();
        let result = match broken {
            Some(b) => {
                writer.shared.poisoned.store(true, Ordering::SeqCst);
                // Counted like a failed fsync: the store refuses everything from here on.
                metrics::counter!("urna_log_poisoned_total").increment(1);
                Err(LogError::GateBroken(b))
            }
            None if entries.is_empty() => Ok(writer.shared.checkpoint()),
            None => {
                let start = Instant::now();
                let r = writer.commit(&entries);
                metrics::histogram!("urna_log_commit_seconds")
                    .record(start.elapsed().as_secs_f64());
                r
            }
        };
        match result {
            Ok(cp) => {
                let mut entries: Vec<Option<Vec<u8>>> = entries.into_iter().map(Some).collect();
                for (reply, p) in waiters {
                    let c = match p {
                        Pending::New(k) => Committed {
                            index: base + k as u64,
                            new: true,
                            entry: entries[k].take(),
                            checkpoint: cp.clone(),
                        },
                        Pending::Existing(i) => Committed {
                            index: i,
                            new: false,
                            entry: None,
                            checkpoint: cp.clone(),
                        },
                    };
                    let _ = reply.send(Ok(c));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log writer stopping");
                for (reply, _) in waiters {
                    let _ = reply.send(Err(SubmitError::Poisoned));
                }
                // Refuse everything still queued, then stop: no retry after a failed write.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Submit(_, reply) => {
                            let _ = reply.send(Err(SubmitError::Poisoned));
                        }
                        Msg::Shutdown(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                if let Some(done) = shutdown {
                    let _ = done.send(());
                }
                return;
            }
        }
        if let Some(done) = shutdown {
            let _ = done.send(());
            return;
        }
        if disconnected {
            return;
        }
    }
}
