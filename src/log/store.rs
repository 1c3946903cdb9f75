//! The durable store: segment files, recovery on open, the writer's commit step, and the
//! read side (entries, tiles) shared with every request task.
//!
//! On disk (see docs/ARCHITECTURE.md): `<first index, 20 digits>.seg` segment files holding
//! framed records ([`super::record`]), and `checkpoint.slots`, the last signed checkpoint
//! note in one of two slots ([`super::slots`]).

use super::config::LogConfig;
use super::gate::Gate;
use super::key::LogKey;
use super::note::{sign_checkpoint, NoteError, SignedCheckpoint};
use super::record::{self, Decoded, MAX_ENTRY_BYTES};
use super::recovery::{scan, Scan};
use super::slots;
use super::storage::{SegmentFile, SlotFile, Storage};
use super::tiles::{push_bundle_entry, Resource, TILE_WIDTH};
use super::tree::HashStore;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tlog_tiles::{record_hash, Hash};

/// Name of the file holding the last signed checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.slots";
/// One offset is kept per this many entries: 4 bytes per 16 entries, and reading one entry
/// skips at most 15 records.
pub(super) const OFFSET_EVERY: u64 = 16;
/// Bytes read from a segment at a time on the read side.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// Segment file name for a segment whose first entry is `first`.
pub fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why the log could not open or had to stop. Every variant is a server-side fault: nothing a
/// client sends reaches these paths.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log configuration: {0}")]
    Config(String),
    #[error("log I/O during {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("log data corrupt: {0}")]
    Corrupt(String),
    /// The rebuilt tree does not extend the checkpoint this log signed last, or that
    /// checkpoint is not ours. Entries this log promised are gone or changed: an alarm for the
    /// operator and the auditors, never something to repair automatically.
    #[error("ALARM: {0}")]
    Alarm(String),
    #[error("gate refused to replay entry {index}: {reason}")]
    GateReplay { index: u64, reason: String },
    /// The gate broke its contract (an entry over 65,535 bytes, an `Existing` index not yet
    /// logged). The store stops rather than let the gate's state drift from the log.
    #[error("gate broke its contract: {0}")]
    GateBroken(String),
    #[error("signing the checkpoint: {0}")]
    Sign(#[from] NoteError),
    #[error("the store is poisoned by an earlier write or fsync failure")]
    Poisoned,
}

pub(super) fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> LogError {
    move |source| LogError::Io { what, source }
}

/// Why a read-side request has no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// No such resource, or not (yet) covered by a checkpoint: the server answers 404.
    #[error("not found")]
    NotFound,
    /// The resource should exist but could not be read: a server fault (500).
    #[error("log read failed: {0}")]
    Failed(String),
}

/// What the read side sees; the writer extends it under the write lock.
pub(crate) struct ReadState {
    pub tree: HashStore,
    /// First entry index of each segment, ascending.
    pub segments: Vec<u64>,
    /// Byte offset, within its segment, of every entry whose index is a multiple of
    /// [`OFFSET_EVERY`]. `u32` because segments stay under 4 GiB (config check).
    pub offsets: Vec<u32>,
    /// The latest signed checkpoint: nothing beyond its size is ever served.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// Sizes of the checkpoints signed since open (and the one recovered), ascending: partial
    /// tiles are served only for these.
    pub checkpointed_sizes: Vec<u64>,
}

/// State shared by the writer and every [`super::LogHandle`].
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub key: LogKey,
    pub state: RwLock<ReadState>,
    /// Set once a write or fsync failed; never cleared (the process must restart).
    pub poisoned: AtomicBool,
}

impl Shared {
    pub fn read(&self) -> RwLockReadGuard<'_, ReadState> {
        // The writer never panics while holding the lock except on a broken invariant, after
        // which the state it leaves is still the last consistent one it published.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ReadState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        self.read().checkpoint.clone()
    }

    /// Reads entries `start..start + count` (all below the latest checkpoint) in order.
    pub fn read_entries(
        &self,
        start: u64,
        count: u64,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), ReadError> {
        let end = start.checked_add(count).ok_or(ReadError::NotFound)?;
        let (segments, mut seg_no, offset, mut index) = {
            let st = self.read();
            if count == 0 || end > st.checkpoint.size {
                return Err(ReadError::NotFound);
            }
            let seg_no = st
                .segments
                .partition_point(|&f| f <= start)
                .checked_sub(1)
                .ok_or_else(|| ReadError::Failed("no segment holds the entry".into()))?;
            let seg_first = st.segments[seg_no];
            let aligned = start - start % OFFSET_EVERY;
            let (offset, index) = if aligned >= seg_first {
                let off = st
                    .offsets
                    .get((aligned / OFFSET_EVERY) as usize)
                    .ok_or_else(|| ReadError::Failed("offset index too short".into()))?;
                (u64::from(*off), aligned)
            } else {
                (0, seg_first)
            };
            // The segment list is short (one per 64 MiB); copying it frees the lock for the
            // file reads.
            (st.segments.clone(), seg_no, offset, index)
        };
        let fail = |m: String| ReadError::Failed(m);
        let mut name = segment_name(segments[seg_no]);
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_offset = offset; // file offset of buf[0]
        let mut pos = 0usize;
        // Bounded: each turn either decodes a record (at most end - index of them, plus
        // skipped ones) or reads more bytes, and reading stops at end of file with an error.
        while index < end {
            if seg_no + 1 < segments.len() && index == segments[seg_no + 1] {
                seg_no += 1;
                name = segment_name(segments[seg_no]);
                buf.clear();
                buf_offset = 0;
                pos = 0;
            }
            match record::decode(&buf, pos) {
                Decoded::Record { entry, next } => {
                    if index >= start {
                        each(entry);
                    }
                    index += 1;
                    pos = next;
                }
                Decoded::Incomplete => {
                    buf.drain(..pos);
                    buf_offset += pos as u64;
                    pos = 0;
                    let have = buf.len();
                    buf.resize(have + READ_CHUNK_BYTES, 0);
                    let n = self
                        .storage
                        .read_at(&name, buf_offset + have as u64, &mut buf[have..])
                        .map_err(|e| fail(format!("{name}: {e}")))?;
                    buf.truncate(have + n);
                    if n == 0 {
                        return Err(fail(format!("{name}: entry {index} missing")));
                    }
                }
                Decoded::Corrupt => {
                    return Err(fail(format!("{name}: entry {index} corrupt")));
                }
            }
        }
        Ok(())
    }

    /// One entry's bytes.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        self.read_entries(index, 1, |e| out.extend_from_slice(e))?;
        Ok(out)
    }

    /// The bytes of a tlog-tiles resource, or `NotFound`.
    pub fn resource(&self, res: Resource) -> Result<Vec<u8>, ReadError> {
        match res {
            Resource::Checkpoint => Ok(self.checkpoint().note.clone()),
            Resource::Tile {
                level,
                index,
                width,
            } => {
                let st = self.read();
                if !served(&st, level, index, width) {
                    return Err(ReadError::NotFound);
                }
                st.tree
                    .tile(level, index, width)
                    .map_err(|_| ReadError::NotFound)
            }
            Resource::Entries { index, width } => {
                if !served(&self.read(), 0, index, width) {
                    return Err(ReadError::NotFound);
                }
                let start = index.checked_mul(TILE_WIDTH).ok_or(ReadError::NotFound)?;
                let mut bundle = Vec::new();
                self.read_entries(start, u64::from(width), |e| {
                    push_bundle_entry(&mut bundle, e)
                })?;
                Ok(bundle)
            }
        }
    }
}

/// Whether the tile (or bundle, at level 0) `level/index[.p/width]` may be served: a full
/// tile once the latest checkpoint covers it, a partial one only for a size the log
/// checkpointed (tlog-tiles: "partial tiles corresponding to tree sizes for which a
/// checkpoint was produced").
fn served(st: &ReadState, level: u8, index: u64, width: u32) -> bool {
    let Some(unit) = 1u64.checked_shl(8 * u32::from(level)).filter(|_| level < 8) else {
        return false;
    };
    let Some(lo) = index
        .checked_mul(TILE_WIDTH)
        .and_then(|x| x.checked_add(u64::from(width)))
        .and_then(|x| x.checked_mul(unit))
    else {
        return false;
    };
    if u64::from(width) == TILE_WIDTH {
        return lo <= st.checkpoint.size;
    }
    // Sizes s with floor(s / unit) == index·256 + width are exactly [lo, lo + unit).
    let hi = lo.saturating_add(unit);
    let i = st.checkpointed_sizes.partition_point(|&s| s < lo);
    st.checkpointed_sizes.get(i).is_some_and(|&s| s < hi)
}

/// The single writer's side of the store.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    segment_max_bytes: u64,
    seg: Box<dyn SegmentFile>,
    seg_len: u64,
    /// The checkpoint file and the number of the last checkpoint written to it.
    slots: Box<dyn SlotFile>,
    cp_seq: u64,
    /// Entries written and durable.
    size: u64,
    /// Reused frame buffer for one batch.
    buf: Vec<u8>,
}

impl Writer {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Recovers the store from `storage`: scans segments, verifies checksums, truncates a torn
    /// tail, rebuilds the tree, replays every entry into `gate`, and checks the rebuilt tree
    /// extends the last checkpoint this log signed. An empty log gets `genesis()` as entry 0.
    pub fn open<G: Gate>(
        storage: Arc<dyn Storage>,
        cfg: &LogConfig,
        key: LogKey,
        gate: &mut G,
        genesis: impl FnOnce() -> Vec<u8>,
    ) -> Result<Self, LogError> {
        cfg.validate().map_err(LogError::Config)?;
        if key.name() != cfg.origin {
            return Err(LogError::Config(format!(
                "key name {:?} is not the configured origin {:?}",
                key.name(),
                cfg.origin
            )));
        }
        let Scan {
            firsts,
            tree,
            offsets,
            seg_len,
            torn,
            recovered,
            cp_seq,
        } = scan(storage.as_ref(), &key, gate)?;

        if let Some((name, len)) = torn {
            tracing::warn!(
                segment = %name,
                at = len,
                "truncating the torn tail of the last segment"
            );
            storage
                .truncate(&name, len)
                .map_err(io_err("truncating a torn tail"))?;
        }
        let mut segments = firsts;
        let seg = match segments.last() {
            Some(&first) => storage
                .open_append(&segment_name(first))
                .map_err(io_err("opening the last segment"))?,
            None => {
                let seg = storage
                    .open_append(&segment_name(0))
                    .map_err(io_err("creating the first segment"))?;
                storage
                    .sync_dir()
                    .map_err(io_err("syncing the directory"))?;
                segments.push(0);
                seg
            }
        };
        let slot_file = storage
            .open_slots(CHECKPOINT_FILE)
            .map_err(io_err("opening the checkpoint file"))?;
        // Make the names of a new segment or checkpoint file durable before writing into them.
        storage
            .sync_dir()
            .map_err(io_err("syncing the directory"))?;
        let size = tree.size();
        let checkpoint = match recovered {
            Some(cp) => Arc::new(cp),
            // A placeholder for the empty or never-checkpointed log; replaced below before
            // anything is served.
            None => Arc::new(SignedCheckpoint {
                size: 0,
                root: tlog_tiles::EMPTY_HASH,
                note: Vec::new(),
            }),
        };
        let checkpointed_sizes = if checkpoint.note.is_empty() {
            Vec::new()
        } else {
            vec![checkpoint.size]
        };
        let shared = Arc::new(Shared {
            storage,
            key,
            state: RwLock::new(ReadState {
                tree,
                segments,
                offsets,
                checkpoint: checkpoint.clone(),
                checkpointed_sizes,
            }),
            poisoned: AtomicBool::new(false),
        });
        let mut writer = Writer {
            shared,
            segment_max_bytes: cfg.segment_max_bytes,
            seg,
            seg_len,
            slots: slot_file,
            cp_seq,
            size,
            buf: Vec::new(),
        };
        if size == 0 {
            let entry = genesis();
            if entry.len() > MAX_ENTRY_BYTES {
                return Err(LogError::Config("genesis entry over 65,535 bytes".into()));
            }
            gate.replay(0, &entry)
                .map_err(|reason| LogError::GateReplay { index: 0, reason })?;
            writer.commit(&[entry])?;
        } else if checkpoint.note.is_empty() || checkpoint.size < size {
            // Durable entries past the last checkpoint (a crash between fsync and checkpoint):
            // cover them before accepting anything.
            writer.checkpoint()?;
        }
        Ok(writer)
    }

    fn poison<T>(&self, e: LogError) -> Result<T, LogError> {
        self.shared.poisoned.store(true, Ordering::SeqCst);
        metrics::counter!("urna_log_poisoned_total").increment(1);
        tracing::error!(error = %e, "log store poisoned; the process must restart");
        Err(e)
    }

    /// Appends `entries` durably and signs a checkpoint covering them. Any error poisons the
    /// store: no retry on the same file (a failed fsync may have dropped dirty pages).
    pub fn commit(&mut self, entries: &[Vec<u8>]) -> Result<Arc<SignedCheckpoint>, LogError> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(LogError::Poisoned);
        }
        match self.commit_inner(entries) {
            Ok(cp) => Ok(cp),
            Err(e) => self.poison(e),
        }
    }

    fn commit_inner(&mut self, entries: &[Vec<u8>]) -> Result<Arc<SignedCheckpoint>, LogError> {
        if self.seg_len >= self.segment_max_bytes {
            let name = segment_name(self.size);
            self.seg = self
                .shared
                .storage
                .open_append(&name)
                .map_err(io_err("creating a segment"))?;
            // fsync the directory before writing into the new segment: records in a file
            // whose name can vanish are not durable.
            self.shared
                .storage
                .sync_dir()
                .map_err(io_err("syncing the directory"))?;
            self.seg_len = 0;
            self.shared.write().segments.push(self.size);
        }
        self.buf.clear();
        let mut new_offsets = Vec::new();
        let mut leaves = Vec::with_capacity(entries.len());
        for (k, e) in entries.iter().enumerate() {
            if e.len() > MAX_ENTRY_BYTES {
                return Err(LogError::GateBroken(format!(
                    "entry of {} bytes (most is {MAX_ENTRY_BYTES})",
                    e.len()
                )));
            }
            if (self.size + k as u64).is_multiple_of(OFFSET_EVERY) {
                new_offsets.push((self.seg_len + self.buf.len() as u64) as u32);
            }
            record::encode(e, &mut self.buf);
            leaves.push(record_hash(e));
        }
        // 1. Write the batch.
        self.seg
            .append(&self.buf)
            .map_err(io_err("writing a batch"))?;
        // 2. fdatasync the segment *before* the tree grows or anything is signed: a signed
        //    root must never cover bytes that could vanish.
        self.seg
            .sync_data()
            .map_err(io_err("fdatasync of the segment"))?;
        self.seg_len += self.buf.len() as u64;
        self.size += entries.len() as u64;
        // 3. Extend the tree. Readers never look past the published checkpoint, so the new
        //    leaves are invisible until step 6. The hashing runs under the shared lock; the
        //    exclusive lock is held only to copy the result in.
        let prepared = self.shared.read().tree.prepare(&leaves);
        {
            let mut st = self.shared.write();
            st.tree.extend_prepared(&prepared, leaves.len() as u64);
            st.offsets.extend(new_offsets);
        }
        metrics::counter!("urna_log_entries_appended_total").increment(entries.len() as u64);
        metrics::histogram!("urna_log_batch_entries").record(entries.len() as f64);
        self.checkpoint()
    }

    /// Signs and persists a checkpoint of the current size, then publishes it.
    fn checkpoint(&mut self) -> Result<Arc<SignedCheckpoint>, LogError> {
        let root: Hash = self
            .shared
            .read()
            .tree
            .root(self.size)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        // 4. Sign.
        let cp = Arc::new(sign_checkpoint(&self.shared.key, self.size, root)?);
        // 5. Persist the checkpoint *before* any receipt carries it: after a crash, recovery
        //    checks the tree against it. Into the slot not holding the newest durable one,
        //    then fdatasync: a torn write leaves the previous checkpoint intact.
        let seq = self.cp_seq + 1;
        let image = slots::encode(seq, &cp.note)
            .ok_or_else(|| LogError::Config("checkpoint note larger than a slot".into()))?;
        self.slots
            .write_at(slots::slot_offset(seq), &image)
            .map_err(io_err("writing the checkpoint"))?;
        self.slots
            .sync_data()
            .map_err(io_err("fdatasync of the checkpoint"))?;
        self.cp_seq = seq;
        // 6. Publish; the caller then answers the batch's waiters.
        {
            let mut st = self.shared.write();
            st.checkpoint = cp.clone();
            st.checkpointed_sizes.push(self.size);
        }
        metrics::gauge!("urna_log_size").set(self.size as f64);
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_strangers_are_ignored() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("checkpoint"), None);
        assert_eq!(parse_segment_name("0042.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.seg"), None);
    }
}
