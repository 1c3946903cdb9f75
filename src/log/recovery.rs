//! Recovery's read side: what is on disk, checked, before anything is changed. The writer's
//! open ([`super::store::Writer::open`]) starts from it, and [`inspect`] runs it alone,
//! read-only, for `urna serve --check` beside a live server.

use super::gate::Gate;
use super::key::LogKey;
use super::note::{open_checkpoint, SignedCheckpoint};
use super::record::{self, Decoded};
use super::slots;
use super::storage::Storage;
use super::store::{
    io_err, parse_segment_name, segment_name, LogError, CHECKPOINT_FILE, OFFSET_EVERY,
};
use super::tree::HashStore;
use tlog_tiles::record_hash;

/// What recovery found on disk, before anything was changed.
pub(super) struct Scan {
    /// First entry index of each segment, ascending.
    pub(super) firsts: Vec<u64>,
    pub(super) tree: HashStore,
    pub(super) offsets: Vec<u32>,
    /// Length of the last segment's valid records.
    pub(super) seg_len: u64,
    /// The last segment's torn tail (its name, where the valid records end), if any.
    pub(super) torn: Option<(String, u64)>,
    /// The newest valid checkpoint on disk, verified against the tree.
    pub(super) recovered: Option<SignedCheckpoint>,
    /// Its sequence number in the slot file (0 without one).
    pub(super) cp_seq: u64,
}

/// Reads everything recovery needs without changing a byte: the checkpoint, then every
/// segment (checksums, chaining, the gate's replay, the tree), then checks that the tree
/// extends the checkpoint. The checkpoint is read *first*, so that a scan of a log a live
/// writer is extending (`urna serve --check`, a backup) never sees a checkpoint newer than
/// the segments it read: a checkpoint is made durable only after the entries it covers.
pub(super) fn scan<G: Gate>(
    storage: &dyn Storage,
    key: &LogKey,
    gate: &mut G,
) -> Result<Scan, LogError> {
    let stored = storage
        .read_all(CHECKPOINT_FILE)
        .map_err(io_err("reading the checkpoint"))?
        .and_then(|file| slots::newest(&file));
    let mut firsts: Vec<u64> = storage
        .list()
        .map_err(io_err("listing the log directory"))?
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .collect();
    firsts.sort_unstable();

    let mut tree = HashStore::new();
    let mut offsets = Vec::new();
    let mut seg_len = 0u64;
    // A torn tail found in the last segment: cut only once the checkpoint check passed,
    // so an alarm leaves the files exactly as found for the operator to examine.
    let mut torn: Option<(String, u64)> = None;
    for (k, &first) in firsts.iter().enumerate() {
        let name = segment_name(first);
        if first != tree.size() {
            return Err(LogError::Corrupt(format!(
                "segment {name} starts at {first}, expected {}",
                tree.size()
            )));
        }
        let data = storage
            .read_all(&name)
            .map_err(io_err("reading a segment"))?
            .unwrap_or_default();
        let last = k + 1 == firsts.len();
        let mut pos = 0usize;
        // Bounded by the segment length: every turn consumes a record or stops.
        loop {
            match record::decode(&data, pos) {
                Decoded::Record { entry, next } => {
                    let index = tree.size();
                    if index.is_multiple_of(OFFSET_EVERY) {
                        offsets.push(pos as u32);
                    }
                    gate.replay(index, entry)
                        .map_err(|reason| LogError::GateReplay { index, reason })?;
                    tree.append(record_hash(entry));
                    pos = next;
                }
                Decoded::Incomplete if pos == data.len() => break,
                Decoded::Incomplete | Decoded::Corrupt => {
                    // Only the last segment can have a torn tail: a segment is closed only
                    // after its last batch was fsynced.
                    if !last {
                        return Err(LogError::Corrupt(format!(
                            "segment {name} is damaged at byte {pos}, and it is not the last"
                        )));
                    }
                    torn = Some((name.clone(), pos as u64));
                    break;
                }
            }
        }
        seg_len = pos as u64;
    }

    // The rebuilt tree must extend the last checkpoint this log signed.
    let cp_seq = stored.as_ref().map_or(0, |(seq, _)| *seq);
    let recovered = match stored {
        // No valid slot: no checkpoint was ever made durable (a first write torn by a
        // crash is the only way here short of damage to both slots).
        None => None,
        Some((_, note)) => {
            let cp = open_checkpoint(&note, key.verifier_key()).map_err(|e| {
                LogError::Alarm(format!("the stored checkpoint is not this log's: {e}"))
            })?;
            if cp.size > tree.size() {
                return Err(LogError::Alarm(format!(
                    "the log holds {} entries but its last signed checkpoint covers {}: \
                     signed entries are missing",
                    tree.size(),
                    cp.size
                )));
            }
            let root = tree
                .root(cp.size)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            if root != cp.root {
                return Err(LogError::Alarm(format!(
                    "the rebuilt tree at size {} has root {root}, but the last signed \
                     checkpoint says {}: signed entries were changed",
                    cp.size, cp.root
                )));
            }
            Some(cp)
        }
    };
    Ok(Scan {
        firsts,
        tree,
        offsets,
        seg_len,
        torn,
        recovered,
        cp_seq,
    })
}

/// What a read-only look at a log found ([`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Entries in the segments (the valid records).
    pub size: u64,
    /// The size the last signed checkpoint covers; `None` if none was ever made durable.
    pub checkpoint_size: Option<u64>,
    /// Bytes past the last valid record of the last segment: a torn tail that the next open
    /// cuts (or, on a log a live writer is extending, a record being written).
    pub torn_bytes: u64,
}

/// Recovery's checks without its writes: every segment's checksums and chaining, `gate`'s
/// replay of every entry, and that the tree extends the last checkpoint signed with `key`.
/// Nothing is created, truncated or locked, so it may run beside the server that owns the
/// log (`urna serve --check`).
pub fn inspect<G: Gate>(
    storage: &dyn Storage,
    key: &LogKey,
    gate: &mut G,
) -> Result<Inspection, LogError> {
    let scan = scan(storage, key, gate)?;
    let torn_bytes = match &scan.torn {
        Some((name, len)) => storage
            .read_all(name)
            .map_err(io_err("reading a segment"))?
            .map_or(0, |d| (d.len() as u64).saturating_sub(*len)),
        None => 0,
    };
    Ok(Inspection {
        size: scan.tree.size(),
        checkpoint_size: scan.recovered.map(|cp| cp.size),
        torn_bytes,
    })
}

/// The first record of the first segment (entry 0, the manifest), read without the rest:
/// `None` if the log has no entry yet. For checks that need the manifest alone.
pub fn first_entry(storage: &dyn Storage) -> Result<Option<Vec<u8>>, LogError> {
    let name = segment_name(0);
    let Some(data) = storage
        .read_all(&name)
        .map_err(io_err("reading the first segment"))?
    else {
        return Ok(None);
    };
    match record::decode(&data, 0) {
        Decoded::Record { entry, .. } => Ok(Some(entry.to_vec())),
        Decoded::Incomplete if data.is_empty() => Ok(None),
        Decoded::Incomplete | Decoded::Corrupt => Err(LogError::Corrupt(format!(
            "segment {name} is damaged at byte 0"
        ))),
    }
}
