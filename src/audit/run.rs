//! The order of an audit's work (`urna audit`): fetch and verify the checkpoint, then stream
//! the entry bundles in order, a bounded number ahead, each prepared (decoded, signatures
//! verified) on a blocking thread while the next ones are fetched, and applied in log order;
//! then the tiles above level 0 and the root. A violation is recorded and the audit goes on;
//! only what leaves nothing further to check stops it. Memory: the bundles in flight, the tree's
//! O(log n) compact range and tile buffers, and the per-voter state (sized by the roll).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::check::{
    bundle_path, bundle_prefix, bundles, diagnose_signature, parse_checkpoint_unverified,
    prepare_bundle, AuditError, LogAudit, PreparedBundle, Report, SignatureFailure,
};
use super::fetch::{save, Source};
use super::receipt::{verify_checkpoint, ReceiptError};
use super::report::{Violation, ViolationKind};
use super::tally::TallyWriter;
use crate::ballot::Roll;
use crate::log::tiles::Resource;

/// Largest checkpoint note read: a checkpoint with a few dozen cosignatures is a few KiB.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
/// Largest hash tile: 256 hashes.
pub const MAX_TILE_BYTES: usize = 256 * 32;
/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with its 2-byte length.
pub const MAX_BUNDLE_BYTES: usize = 256 * (2 + 65_535);
/// Most bundles in flight, whatever `--bundles-ahead` asks. Each one in flight holds its
/// bundle, its level-0 tile and, once prepared, its decoded entries (~200 KB for 256
/// ballots of 512-byte payloads): unclamped, 1,000 ahead took the audit of a 1,000,001-entry
/// log to a max RSS of 336 MB (131 MB at 8); clamped here, 148 MB. Two cores are kept busy
/// with far fewer (8 do it), so more buys no speed. Bytes are bounded too: [`MAX_KIB_AHEAD`].
pub const MAX_BUNDLES_AHEAD: usize = 64;
/// What one bundle reserves while it is fetched: the largest bundle and tile, in KiB.
const RESERVE_KIB: usize = (MAX_BUNDLE_BYTES + MAX_TILE_BYTES) / 1024 + 1;
/// Memory the bundles in flight may hold together, whatever their size, in KiB: a bundle
/// reserves the largest size allowed while it is fetched, then keeps three times what it
/// really holds (its bytes, its tile, its decoded entries) until it is applied. An honest
/// log's bundles (~150 KB) never reach it; a log of 16 MiB bundles is held to ~7 at once
/// instead of 64 (~1 GiB).
pub const MAX_KIB_AHEAD: usize = 128 * 1024;

/// What to audit.
pub struct AuditRequest {
    pub source: Arc<Source>,
    /// The log's verifier key text.
    pub verifier_key: String,
    pub roll: Arc<Roll>,
    /// An older signed checkpoint the auditor kept, verbatim.
    pub previous: Option<Vec<u8>>,
    /// Bundles fetched and prepared ahead of the one being applied. Each may hold 16 MiB,
    /// so this bounds memory; it also bounds how many signature checks run in parallel.
    /// Clamped to 1..=[`MAX_BUNDLES_AHEAD`].
    pub bundles_ahead: usize,
    /// Keep a copy of every file fetched here (a mirror of what was audited).
    pub save_to: Option<PathBuf>,
    /// Say on stderr how far the audit has got, at most this often (`None`: never). Over
    /// the network an audit goes at the server's read pace (~1,900 entries/s at the
    /// defaults), so a 10M-ballot election takes hours: without a sign of life an observer
    /// cannot tell a slow audit from a stuck one.
    pub progress_every: Option<Duration>,
    /// Violations kept in full per kind (all are counted): a forged log may break a rule
    /// in every entry, and must not choose the auditor's memory.
    pub max_per_kind: usize,
    /// Write the tally-ready set here (`--tally`).
    pub tally: Option<PathBuf>,
}

/// Runs the audit. `Ok` with the report of what it found (violations included: check
/// [`Report::ok`]); `Err` if it could not go on for a reason that is not a broken rule of
/// the log (the auditor's trouble fetching, a key of another log, the tally file), or if
/// the log gives nothing to audit (no checkpoint, an empty tree).
pub async fn audit(req: AuditRequest) -> Result<Report, AuditError> {
    let src = req.source.clone();
    let save_to = req.save_to.clone();
    let checkpoint_note = fetch(&src, save_to.as_ref(), "checkpoint", MAX_CHECKPOINT_BYTES).await?;
    let mut early = Vec::new();
    let checkpoint = match verify_checkpoint(&checkpoint_note, &req.verifier_key) {
        Ok(c) => c,
        Err(e @ ReceiptError::Key(_)) => return Err(AuditError::Checkpoint(e)),
        Err(e) => {
            // Audit the tree the unverified checkpoint names anyway: the report then names
            // every other violation too, not only the signature.
            let body = parse_checkpoint_unverified(&checkpoint_note)
                .map_err(|m| AuditError::Checkpoint(ReceiptError::Checkpoint(m)))?;
            let message = match (
                &e,
                diagnose_signature(&checkpoint_note, &req.verifier_key, &body.origin),
            ) {
                (_, SignatureFailure::KeyOfAnotherLog(m)) => {
                    return Err(AuditError::KeyOfAnotherLog(m))
                }
                (ReceiptError::Signature(_), SignatureFailure::Log(m)) => m,
                (other, _) => other.to_string(),
            };
            let kind = match e {
                ReceiptError::Signature(_) => ViolationKind::CheckpointSignature,
                _ => ViolationKind::CheckpointMalformed,
            };
            early.push(Violation::log(kind, format!("checkpoint: {message}")));
            body
        }
    };
    let previous = req
        .previous
        .as_deref()
        .map(|p| verify_checkpoint(p, &req.verifier_key).map_err(AuditError::Previous))
        .transpose()?;
    let mut audit = LogAudit::new(req.roll.clone(), &req.verifier_key, checkpoint, previous)?
        .keep_per_kind(req.max_per_kind);
    if let Some(path) = &req.tally {
        let t = TallyWriter::create(path, req.roll.len())
            .map_err(|e| AuditError::Tally(format!("{}: {e}", path.display())))?;
        audit = audit.with_tally(t);
    }
    for v in early {
        audit.record(v);
    }
    let size = audit.size();

    let mut todo = bundles(size);
    let mut inflight = Inflight(VecDeque::new());
    let started = Instant::now();
    let mut said = started;
    let ahead = req.bundles_ahead.clamp(1, MAX_BUNDLES_AHEAD);
    let memory = Arc::new(Semaphore::new(MAX_KIB_AHEAD));
    // Bounded: each turn applies one bundle, and there are ceil(size / 256) of them.
    loop {
        while inflight.0.len() < ahead {
            let Some((index, width)) = todo.next() else {
                break;
            };
            let src = src.clone();
            let save_to = save_to.clone();
            let memory = memory.clone();
            let task_path = bundle_path(index, width);
            inflight.0.push_back((
                task_path,
                tokio::spawn(async move {
                    // Tasks ask in the order they were spawned and the semaphore grants in
                    // that order, so the oldest — the one the loop awaits — always gets its
                    // share: no deadlock.
                    let mut reserved = memory
                        .acquire_many_owned(RESERVE_KIB as u32)
                        .await
                        .expect("the semaphore is never closed");
                    let (bundle, tile) = tokio::join!(
                        fetch_partial(&src, save_to.as_ref(), Kind::Entries, index, width),
                        fetch_partial(&src, save_to.as_ref(), Kind::Tile(0), index, width),
                    );
                    // A file not served is the log's violation, and the audit goes on with
                    // what the other gives; anything else stops it.
                    let mut missing = Vec::new();
                    let mut served = |r: Result<Vec<u8>, AuditError>| match r {
                        Ok(b) => Ok(Some(b)),
                        Err(e @ AuditError::NotServed { .. }) => {
                            missing.push(Violation::at(
                                index * crate::log::tiles::TILE_WIDTH,
                                ViolationKind::NotServed,
                                e.to_string(),
                            ));
                            Ok(None)
                        }
                        Err(e) => Err(e),
                    };
                    let bundle = served(bundle)?;
                    let tile = served(tile)?;
                    let held =
                        bundle.as_ref().map_or(0, Vec::len) + tile.as_ref().map_or(0, Vec::len);
                    let keep = (3 * held / 1024 + 1).min(RESERVE_KIB);
                    // The rest of the reservation goes back now.
                    let permit = reserved.split(keep).expect("keep <= reserved");
                    drop(reserved);
                    let mut prepared = tokio::task::spawn_blocking(move || {
                        prepare_bundle(index, width, bundle.as_deref(), tile.as_deref())
                    })
                    .await
                    .map_err(|e| AuditError::Fetch {
                        path: bundle_path(index, width),
                        reason: format!("preparing the bundle failed: {e}"),
                    })?;
                    missing.append(&mut prepared.violations);
                    prepared.violations = missing;
                    Ok::<_, AuditError>((prepared, permit))
                }),
            ));
        }
        let Some((task_path, next)) = inflight.0.pop_front() else {
            break;
        };
        let (prepared, _held) = next.await.map_err(|e| AuditError::Fetch {
            path: task_path,
            reason: format!("its fetch task failed: {e}"),
        })??;
        let due = match audit.apply(prepared) {
            Ok(due) => due,
            Err(stop) => {
                // The tree cannot be rebuilt further: report what was found so far.
                audit.record(stop.violation());
                break;
            }
        };
        for tile in due {
            match fetch(&src, save_to.as_ref(), &tile.path(), MAX_TILE_BYTES).await {
                Ok(bytes) => audit.check_tile(&tile, &bytes),
                Err(e @ AuditError::NotServed { .. }) => audit.record(Violation::at(
                    tile.first_entry(),
                    ViolationKind::NotServed,
                    e.to_string(),
                )),
                Err(e) => return Err(e),
            }
        }
        if req
            .progress_every
            .is_some_and(|every| said.elapsed() >= every)
        {
            eprintln!(
                "{}",
                progress_line(audit.checked(), size, started.elapsed())
            );
            said = Instant::now();
        }
    }
    drop(inflight);
    if audit.checked() == size {
        for tile in audit.final_tiles() {
            // Partial: fewer than 256 hashes by construction.
            let width = tile.hashes.len() as u32;
            let kind = Kind::Tile(tile.level);
            match fetch_partial(&src, save_to.as_ref(), kind, tile.index, width).await {
                Ok(bytes) => audit.check_tile(&tile, &bytes),
                Err(e @ AuditError::NotServed { .. }) => audit.record(Violation::at(
                    tile.first_entry(),
                    ViolationKind::NotServed,
                    e.to_string(),
                )),
                Err(e) => return Err(e),
            }
        }
    }
    audit.finish()
}

/// `audit: 512000 of 10000000 entries checked (5.1%) in 270 s, 1896 a second, about 83 min
/// left`: the time left is at the rate so far.
pub fn progress_line(checked: u64, size: u64, elapsed: Duration) -> String {
    let percent = if size == 0 {
        100.0
    } else {
        100.0 * checked as f64 / size as f64
    };
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        checked as f64 / secs
    } else {
        0.0
    };
    let left = if rate >= 1.0 {
        let s = size.saturating_sub(checked) as f64 / rate;
        if s < 120.0 {
            format!("about {s:.0} s left")
        } else {
            format!("about {:.0} min left", s / 60.0)
        }
    } else {
        "time left unknown".to_owned()
    };
    format!(
        "audit: {checked} of {size} entries checked ({percent:.1}%) in {secs:.0} s, {rate:.0} a second, {left}"
    )
}

/// A tile level or the entry bundles.
#[derive(Clone, Copy)]
enum Kind {
    Tile(u8),
    Entries,
}

/// Fetches tile or bundle `index` of `width` (1..=256). A partial one the source does not
/// serve is taken from the full one, whose first `width` hashes or entries it is by
/// definition (tlog-tiles): a server keeps partial tiles only for sizes it checkpointed,
/// and after a restart only for the latest, so a log that grew past the tile during the
/// audit may no longer serve the partial one the audited size needs. What is taken is
/// still checked against the recomputed hashes and root, so the fallback trusts nothing.
async fn fetch_partial(
    src: &Source,
    save_to: Option<&PathBuf>,
    kind: Kind,
    index: u64,
    width: u32,
) -> Result<Vec<u8>, AuditError> {
    let (path, full_path, max) = match kind {
        Kind::Tile(level) => (
            Resource::Tile {
                level,
                index,
                width,
            }
            .path(),
            Resource::Tile {
                level,
                index,
                width: 256,
            }
            .path(),
            MAX_TILE_BYTES,
        ),
        Kind::Entries => (
            bundle_path(index, width),
            bundle_path(index, 256),
            MAX_BUNDLE_BYTES,
        ),
    };
    match fetch(src, save_to, &path, max).await {
        Err(not_served @ AuditError::NotServed { .. }) if width < 256 => {
            let Ok(full) = fetch(src, save_to, &full_path, max).await else {
                return Err(not_served);
            };
            Ok(match kind {
                Kind::Tile(_) => full[..full.len().min(width as usize * 32)].to_vec(),
                Kind::Entries => bundle_prefix(&full, width).to_vec(),
            })
        }
        other => other,
    }
}

/// A bundle being fetched and prepared, with the memory it holds until it is applied.
type BundleTask =
    tokio::task::JoinHandle<Result<(PreparedBundle, OwnedSemaphorePermit), AuditError>>;

/// The bundles being fetched and prepared; aborted if the audit stops early.
/// Each with the path of its bundle, for messages.
struct Inflight(VecDeque<(String, BundleTask)>);

impl Drop for Inflight {
    fn drop(&mut self) {
        for (_, t) in &self.0 {
            t.abort();
        }
    }
}

/// Fetches one resource. A resource the log must serve but does not, or serves oversized,
/// is the log's fault; a transport failure is not (`Fetch`).
async fn fetch(
    src: &Source,
    save_to: Option<&PathBuf>,
    path: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, AuditError> {
    use super::fetch::FetchError;
    let bytes = src.get(path, max_bytes).await.map_err(|e| match e {
        FetchError::NotFound => AuditError::NotServed {
            path: path.to_owned(),
            from: src.describe(),
        },
        FetchError::TooLarge { .. } => AuditError::Fetched {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        other => AuditError::Fetch {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })?;
    if let Some(dir) = save_to {
        save(dir, path, &bytes)
            .await
            .map_err(|e| AuditError::Fetch {
                path: path.to_owned(),
                reason: format!("saving to {}: {e}", dir.display()),
            })?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_how_fast_and_how_long_to_go() {
        let s = Duration::from_secs;
        assert_eq!(
            progress_line(512_000, 10_000_000, s(270)),
            "audit: 512000 of 10000000 entries checked (5.1%) in 270 s, 1896 a second, \
             about 83 min left"
        );
        assert_eq!(
            progress_line(256, 264, s(1)),
            "audit: 256 of 264 entries checked (97.0%) in 1 s, 256 a second, about 0 s left"
        );
        // Nothing checked yet, or no time measured: no rate to guess from.
        assert!(progress_line(0, 1000, s(3)).ends_with("0 a second, time left unknown"));
        assert!(progress_line(5, 1000, Duration::ZERO).ends_with("time left unknown"));
        assert!(progress_line(0, 0, s(1)).contains("(100.0%)"));
    }
}
