//! The order of an audit's work (`urna audit`): fetch and verify the checkpoint, then stream
//! the entry bundles in order, a bounded number ahead, each prepared (decoded, signatures
//! verified) on a blocking thread while the next ones are fetched, and applied in log order;
//! then the tiles above level 0 and the root. Memory: the bundles in flight, the tree's
//! O(log n) compact range and tile buffers, and the per-voter state (sized by the roll).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use super::check::{
    bundle_path, bundles, leaf_tile_path, prepare_bundle, AuditError, LogAudit, PreparedBundle,
    Summary,
};
use super::fetch::{save, Source};
use super::receipt::verify_checkpoint;
use crate::ballot::Roll;

/// Largest checkpoint note read: a checkpoint with a few dozen cosignatures is a few KiB.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
/// Largest hash tile: 256 hashes.
pub const MAX_TILE_BYTES: usize = 256 * 32;
/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with its 2-byte length.
pub const MAX_BUNDLE_BYTES: usize = 256 * (2 + 65_535);

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
    pub bundles_ahead: usize,
    /// Keep a copy of every file fetched here (a mirror of what was audited).
    pub save_to: Option<PathBuf>,
}

/// Runs the audit. `Ok` only if every check passed.
pub async fn audit(req: AuditRequest) -> Result<Summary, AuditError> {
    let src = req.source.clone();
    let save_to = req.save_to.clone();
    let checkpoint_note = fetch(&src, save_to.as_ref(), "checkpoint", MAX_CHECKPOINT_BYTES).await?;
    let checkpoint =
        verify_checkpoint(&checkpoint_note, &req.verifier_key).map_err(AuditError::Checkpoint)?;
    let previous = req
        .previous
        .as_deref()
        .map(|p| verify_checkpoint(p, &req.verifier_key).map_err(AuditError::Previous))
        .transpose()?;
    let mut audit = LogAudit::new(req.roll.clone(), &req.verifier_key, checkpoint, previous)?;
    let size = audit.size();

    let mut todo = bundles(size);
    let mut inflight = Inflight(VecDeque::new());
    let ahead = req.bundles_ahead.max(1);
    // Bounded: each turn applies one bundle, and there are ceil(size / 256) of them.
    loop {
        while inflight.0.len() < ahead {
            let Some((index, width)) = todo.next() else {
                break;
            };
            let src = src.clone();
            let save_to = save_to.clone();
            inflight.0.push_back(tokio::spawn(async move {
                let (bpath, tpath) = (bundle_path(index, width), leaf_tile_path(index, width));
                let (bundle, tile) = tokio::try_join!(
                    fetch(&src, save_to.as_ref(), &bpath, MAX_BUNDLE_BYTES),
                    fetch(&src, save_to.as_ref(), &tpath, MAX_TILE_BYTES),
                )?;
                tokio::task::spawn_blocking(move || prepare_bundle(index, width, &bundle, tile))
                    .await
                    .map_err(|e| AuditError::Fetch {
                        path: bundle_path(index, width),
                        reason: format!("preparing the bundle failed: {e}"),
                    })?
            }));
        }
        let Some(next) = inflight.0.pop_front() else {
            break;
        };
        let prepared = next.await.map_err(|e| AuditError::Fetch {
            path: "tile/entries".into(),
            reason: format!("a fetch task failed: {e}"),
        })??;
        for tile in audit.apply(prepared)? {
            let bytes = fetch(&src, save_to.as_ref(), &tile.path(), MAX_TILE_BYTES).await?;
            audit.check_tile(&tile, &bytes)?;
        }
    }
    for tile in audit.final_tiles() {
        let bytes = fetch(&src, save_to.as_ref(), &tile.path(), MAX_TILE_BYTES).await?;
        audit.check_tile(&tile, &bytes)?;
    }
    audit.finish()
}

/// The bundles being fetched and prepared; aborted if the audit stops early.
struct Inflight(VecDeque<tokio::task::JoinHandle<Result<PreparedBundle, AuditError>>>);

impl Drop for Inflight {
    fn drop(&mut self) {
        for t in &self.0 {
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
