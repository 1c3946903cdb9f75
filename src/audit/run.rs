//! The order of an audit's work (`urna audit`): fetch and verify the checkpoint, then stream
//! the entry bundles in order, a bounded number ahead, each prepared (decoded, signatures
//! verified) on a blocking thread while the next ones are fetched, and applied in log order;
//! then the tiles above level 0 and the root. Memory: the bundles in flight, the tree's
//! O(log n) compact range and tile buffers, and the per-voter state (sized by the roll).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::check::{
    bundle_path, bundle_prefix, bundles, prepare_bundle, AuditError, LogAudit, PreparedBundle,
    Summary,
};
use super::fetch::{save, Source};
use super::receipt::verify_checkpoint;
use crate::ballot::Roll;
use crate::log::tiles::Resource;

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
    /// Say on stderr how far the audit has got, at most this often (`None`: never). Over
    /// the network an audit goes at the server's read pace (~1,900 entries/s at the
    /// defaults), so a 10M-ballot election takes hours: without a sign of life an observer
    /// cannot tell a slow audit from a stuck one.
    pub progress_every: Option<Duration>,
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
    let started = Instant::now();
    let mut said = started;
    let mut checked = 0u64;
    let ahead = req.bundles_ahead.max(1);
    // Bounded: each turn applies one bundle, and there are ceil(size / 256) of them.
    loop {
        while inflight.0.len() < ahead {
            let Some((index, width)) = todo.next() else {
                break;
            };
            let src = src.clone();
            let save_to = save_to.clone();
            let task_path = bundle_path(index, width);
            inflight.0.push_back((
                task_path,
                tokio::spawn(async move {
                    let (bundle, tile) = tokio::try_join!(
                        fetch_partial(&src, save_to.as_ref(), Kind::Entries, index, width),
                        fetch_partial(&src, save_to.as_ref(), Kind::Tile(0), index, width),
                    )?;
                    tokio::task::spawn_blocking(move || prepare_bundle(index, width, &bundle, tile))
                        .await
                        .map_err(|e| AuditError::Fetch {
                            path: bundle_path(index, width),
                            reason: format!("preparing the bundle failed: {e}"),
                        })?
                }),
            ));
        }
        let Some((task_path, next)) = inflight.0.pop_front() else {
            break;
        };
        let prepared = next.await.map_err(|e| AuditError::Fetch {
            path: task_path,
            reason: format!("its fetch task failed: {e}"),
        })??;
        checked += prepared.entries.len() as u64;
        for tile in audit.apply(prepared)? {
            let bytes = fetch(&src, save_to.as_ref(), &tile.path(), MAX_TILE_BYTES).await?;
            audit.check_tile(&tile, &bytes)?;
        }
        if req
            .progress_every
            .is_some_and(|every| said.elapsed() >= every)
        {
            eprintln!("{}", progress_line(checked, size, started.elapsed()));
            said = Instant::now();
        }
    }
    for tile in audit.final_tiles() {
        // Partial: fewer than 256 hashes by construction.
        let width = tile.hashes.len() as u32;
        let kind = Kind::Tile(tile.level);
        let bytes = fetch_partial(&src, save_to.as_ref(), kind, tile.index, width).await?;
        audit.check_tile(&tile, &bytes)?;
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

/// The bundles being fetched and prepared; aborted if the audit stops early.
/// Each with the path of its bundle, for messages.
struct Inflight(
    VecDeque<(
        String,
        tokio::task::JoinHandle<Result<PreparedBundle, AuditError>>,
    )>,
);

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
