//! Proofs built from a log's published tiles, for the observers' commands that do not read
//! the whole log: a consistency proof between two checkpoints (`urna monitor`, `urna mirror`,
//! `urna verify-receipt --url`), an inclusion proof of one entry, and the leaf hashes of a
//! range of entries.
//!
//! The tiles are read with `tlog_tiles`' `TileHashReader`, which authenticates every tile
//! it hands out against the signed root before returning a hash (the method of
//! research.swtch.com/tlog#authenticating_tiles), and the proofs it computes are then
//! verified with [`super::proof`], written from the RFC independently of `tlog_tiles`: a
//! wrong tile, a wrong proof or a bug in either implementation fails the check rather than
//! passing it.
//!
//! `TileReader` is synchronous and our sources are not, so each proof runs in rounds: the
//! computation runs against the tiles fetched so far, a reader that lacks one records what
//! was asked and fails, the missing tiles are fetched, and the computation runs again.
//! `TileHashReader` asks for every tile of one computation at once, so two rounds suffice;
//! the bound below allows one more.

use std::cell::RefCell;
use std::collections::HashMap;

use tlog_tiles::{
    prove_record, prove_tree, stored_hash_index, Hash, HashReader, Tile, TileHashReader, TileReader,
};

use super::check::{bundle_path, bundle_prefix};
use super::fetch::{FetchError, Source};
use super::proof::leaf_hash;
use super::proof::{verify_consistency, verify_inclusion, Digest32};
use super::receipt::{verify_checkpoint, CheckpointBody, ReceiptError, VerifiedReceipt};
use super::run::{MAX_BUNDLE_BYTES, MAX_CHECKPOINT_BYTES, MAX_TILE_BYTES};
use crate::log::tiles::{Resource, TILE_WIDTH};

/// Rounds of fetch-and-recompute before giving up (see the module doc: 2 are needed).
const MAX_ROUNDS: usize = 3;

/// Leaf hashes read at once by [`leaf_hashes`]: a bound on the tiles one call fetches and
/// holds (1 MiB of level-0 tiles).
pub const MAX_LEAVES_PER_READ: u64 = 32 * TILE_WIDTH;

/// Why a proof from tiles failed.
#[derive(Debug, thiserror::Error)]
pub enum TiledError {
    /// The observer could not fetch a file: proves nothing about the log.
    #[error("{path}: could not fetch: {reason}")]
    Fetch { path: String, reason: String },
    /// The log does not serve a tile or bundle its checkpoint implies.
    #[error("{path}: not served by {from}")]
    NotServed { path: String, from: String },
    /// The tiles served do not hash to the signed root (or are malformed).
    #[error("the tiles served do not hash to the root of the checkpoint of size {size}: {reason}")]
    Tiles { size: u64, reason: String },
    /// The tree of size `old` is not a prefix of the tree of size `new`.
    #[error(
        "the tree of size {new} does not extend the checkpoint of size {old}: the consistency proof from the tiles does not verify"
    )]
    Inconsistent { old: u64, new: u64 },
    /// The new checkpoint is smaller than the old one.
    #[error("the checkpoint went back from size {old} to size {new}")]
    Rollback { old: u64, new: u64 },
    /// Same size, different roots.
    #[error("two checkpoints of size {size} with different roots")]
    Fork { size: u64 },
    /// Entry `index` is not in the tree.
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    /// The log's current checkpoint does not verify under its key.
    #[error("the log's current checkpoint: {0}")]
    Checkpoint(ReceiptError),
}

impl TiledError {
    /// Whether the failure proves something against the log (rather than the observer's
    /// trouble reaching it).
    pub fn is_log_fault(&self) -> bool {
        !matches!(
            self,
            TiledError::Fetch { .. } | TiledError::Checkpoint(ReceiptError::Key(_))
        )
    }
}

/// A `TileReader` over the tiles fetched so far; records the ones it lacks.
struct Recorder<'a> {
    have: &'a HashMap<Tile, Vec<u8>>,
    missing: RefCell<Vec<Tile>>,
}

impl TileReader for Recorder<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            match self.have.get(t) {
                Some(d) => out.push(d.clone()),
                None => self.missing.borrow_mut().push(*t),
            }
        }
        if self.missing.borrow().is_empty() {
            Ok(out)
        } else {
            Err(tlog_tiles::Error::InvalidInput(
                "tiles not fetched yet".into(),
            ))
        }
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// Runs `compute` against the tiles of the tree (`size`, `root`), fetching what it asks
/// for from `src`. `size` must be at least 1.
async fn with_tiles<T>(
    src: &Source,
    size: u64,
    root: &Digest32,
    compute: impl Fn(&TileHashReader<'_>) -> Result<T, tlog_tiles::Error>,
) -> Result<T, TiledError> {
    let mut have: HashMap<Tile, Vec<u8>> = HashMap::new();
    let tiles_error = |reason: String| TiledError::Tiles { size, reason };
    for _ in 0..MAX_ROUNDS {
        let missing = {
            let rec = Recorder {
                have: &have,
                missing: RefCell::new(Vec::new()),
            };
            let reader = TileHashReader::new(size, Hash(*root), &rec);
            let result = compute(&reader);
            let missing = rec.missing.into_inner();
            match result {
                Ok(v) if missing.is_empty() => return Ok(v),
                Err(e) if missing.is_empty() => return Err(tiles_error(e.to_string())),
                _ => missing,
            }
        };
        for t in missing {
            if have.contains_key(&t) {
                continue;
            }
            let data = get_tile(src, t.level(), t.level_index(), t.width()).await?;
            have.insert(t, data);
        }
    }
    Err(tiles_error(format!(
        "still missing tiles after {MAX_ROUNDS} rounds"
    )))
}

fn fetch_error(src: &Source, path: &str, e: FetchError) -> TiledError {
    match e {
        FetchError::NotFound => TiledError::NotServed {
            path: path.to_owned(),
            from: src.describe(),
        },
        other => TiledError::Fetch {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Hash tile (`level`, `index`) of `width` hashes. A partial tile the source no longer serves
/// is taken from the full one, whose first `width` hashes it is by definition (the server
/// keeps partial tiles only for the sizes it checkpointed); what is taken is authenticated
/// against the root all the same.
pub async fn get_tile(
    src: &Source,
    level: u8,
    index: u64,
    width: u32,
) -> Result<Vec<u8>, TiledError> {
    let path = Resource::Tile {
        level,
        index,
        width,
    }
    .path();
    match src.get(&path, MAX_TILE_BYTES).await {
        Ok(b) => Ok(b),
        Err(FetchError::NotFound) if u64::from(width) < TILE_WIDTH => {
            let full = Resource::Tile {
                level,
                index,
                width: TILE_WIDTH as u32,
            }
            .path();
            match src.get(&full, MAX_TILE_BYTES).await {
                Ok(b) => Ok(b[..b.len().min(width as usize * 32)].to_vec()),
                Err(_) => Err(fetch_error(src, &path, FetchError::NotFound)),
            }
        }
        Err(e) => Err(fetch_error(src, &path, e)),
    }
}

/// Entry bundle `index` of `width` entries, with the same fallback to the full bundle as
/// [`get_tile`]. Not checked here: the caller compares its entries with leaf hashes.
pub async fn get_bundle(src: &Source, index: u64, width: u32) -> Result<Vec<u8>, TiledError> {
    let path = bundle_path(index, width);
    match src.get(&path, MAX_BUNDLE_BYTES).await {
        Ok(b) => Ok(b),
        Err(FetchError::NotFound) if u64::from(width) < TILE_WIDTH => {
            match src
                .get(&bundle_path(index, TILE_WIDTH as u32), MAX_BUNDLE_BYTES)
                .await
            {
                Ok(b) => Ok(bundle_prefix(&b, width).to_vec()),
                Err(_) => Err(fetch_error(src, &path, FetchError::NotFound)),
            }
        }
        Err(e) => Err(fetch_error(src, &path, e)),
    }
}

/// Proves from `src`'s tiles (authenticated against `new`) that `old` is a prefix of `new`.
/// Both checkpoints must already be verified under the log's key.
pub async fn prove_consistent(
    src: &Source,
    old: &CheckpointBody,
    new: &CheckpointBody,
) -> Result<(), TiledError> {
    if old.size > new.size {
        return Err(TiledError::Rollback {
            old: old.size,
            new: new.size,
        });
    }
    if old.size == new.size {
        return if old.root == new.root {
            Ok(())
        } else {
            Err(TiledError::Fork { size: old.size })
        };
    }
    if old.size == 0 {
        // Every tree extends the empty one, whose root is SHA-256("").
        return if old.root == tlog_tiles::EMPTY_HASH.0 {
            Ok(())
        } else {
            Err(TiledError::Inconsistent {
                old: 0,
                new: new.size,
            })
        };
    }
    let proof = with_tiles(src, new.size, &new.root, |r| {
        prove_tree(new.size, old.size, r)
    })
    .await?;
    let path: Vec<Digest32> = proof.iter().map(|h| h.0).collect();
    if verify_consistency(old.size, new.size, &old.root, &new.root, &path) {
        Ok(())
    } else {
        Err(TiledError::Inconsistent {
            old: old.size,
            new: new.size,
        })
    }
}

/// Proves from `src`'s tiles that the leaf `leaf` sits at `index` in the tree `tree`.
pub async fn prove_included(
    src: &Source,
    index: u64,
    leaf: &Digest32,
    tree: &CheckpointBody,
) -> Result<(), TiledError> {
    if index >= tree.size {
        return Err(TiledError::Entry {
            index,
            reason: format!("not in the tree of size {}", tree.size),
        });
    }
    let proof = with_tiles(src, tree.size, &tree.root, |r| {
        prove_record(tree.size, index, r)
    })
    .await?;
    let path: Vec<Digest32> = proof.iter().map(|h| h.0).collect();
    if verify_inclusion(index, tree.size, leaf, &path, &tree.root) {
        Ok(())
    } else {
        Err(TiledError::Entry {
            index,
            reason: format!(
                "is not the leaf at this index in the tree of size {}",
                tree.size
            ),
        })
    }
}

/// The leaf hashes of entries `lo..hi` of the tree `tree`, read from `src`'s level-0 tiles
/// and authenticated against its root. At most [`MAX_LEAVES_PER_READ`] at once.
pub async fn leaf_hashes(
    src: &Source,
    lo: u64,
    hi: u64,
    tree: &CheckpointBody,
) -> Result<Vec<Digest32>, TiledError> {
    if hi > tree.size || lo > hi || hi - lo > MAX_LEAVES_PER_READ {
        return Err(TiledError::Tiles {
            size: tree.size,
            reason: format!("leaves {lo}..{hi} asked of a tree of size {}", tree.size),
        });
    }
    if lo == hi {
        return Ok(Vec::new());
    }
    let indexes: Vec<u64> = (lo..hi).map(|i| stored_hash_index(0, i)).collect();
    let hashes = with_tiles(src, tree.size, &tree.root, |r| r.read_hashes(&indexes)).await?;
    Ok(hashes.into_iter().map(|h| h.0).collect())
}

/// The source's current checkpoint, verified under `verifier_key`, and its note verbatim.
pub async fn current_checkpoint(
    src: &Source,
    verifier_key: &str,
) -> Result<(CheckpointBody, Vec<u8>), TiledError> {
    let note = src
        .get("checkpoint", MAX_CHECKPOINT_BYTES)
        .await
        .map_err(|e| fetch_error(src, "checkpoint", e))?;
    let body = verify_checkpoint(&note, verifier_key).map_err(TiledError::Checkpoint)?;
    Ok((body, note))
}

/// The `n`th entry of an entry bundle, if it holds that many.
pub fn bundle_entry(bundle: &[u8], n: usize) -> Option<&[u8]> {
    let mut at = 0usize;
    // Bounded: at most `n + 1` (≤ 256) turns.
    for i in 0..=n {
        let len = bundle.get(at..at + 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let bytes = bundle.get(at + 2..at + 2 + len)?;
        if i == n {
            return Some(bytes);
        }
        at += 2 + len;
    }
    None
}

/// What `urna verify-receipt --url` proves of a receipt already verified offline: the log
/// `src` serves today is signed by the same key, extends the receipt's checkpoint
/// (consistency proof from its tiles), still holds the receipt's entry at its index
/// (inclusion proof in today's tree), and serves exactly those bytes in its entry bundle.
/// Returns today's checkpoint.
pub async fn receipt_in_current_log(
    src: &Source,
    verifier_key: &str,
    receipt: &VerifiedReceipt,
) -> Result<CheckpointBody, TiledError> {
    let (current, _) = current_checkpoint(src, verifier_key).await?;
    prove_consistent(src, &receipt.checkpoint, &current).await?;
    let index = receipt.index;
    prove_included(src, index, &leaf_hash(&receipt.entry), &current).await?;
    let bundle_index = index / TILE_WIDTH;
    // At most 256, so the cast is exact.
    let width = (current.size - bundle_index * TILE_WIDTH).min(TILE_WIDTH) as u32;
    let bundle = get_bundle(src, bundle_index, width).await?;
    match bundle_entry(&bundle, (index % TILE_WIDTH) as usize) {
        Some(e) if e == receipt.entry.as_slice() => Ok(current),
        _ => Err(TiledError::Entry {
            index,
            reason: format!(
                "{} does not serve the receipt's bytes at this index",
                bundle_path(bundle_index, width)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::proof::leaf_hash;
    use crate::audit::tree::TreeBuilder;

    /// Writes the tiles of a tree of `n` leaves (`"leaf i"`) under `dir`, for sizes `sizes`
    /// (their partial tiles), and returns each size's checkpoint body.
    fn tiled_log(dir: &std::path::Path, n: u64, sizes: &[u64]) -> Vec<CheckpointBody> {
        let mut t = TreeBuilder::new();
        let mut out = Vec::new();
        let write = |p: String, b: Vec<u8>| {
            let to = dir.join(p);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, b).unwrap();
        };
        for i in 0..n {
            for tile in t.push(leaf_hash(format!("leaf {i}").as_bytes())) {
                write(tile.path(), tile.bytes());
            }
            if sizes.contains(&t.size()) {
                for tile in t.partial_tiles() {
                    write(tile.path(), tile.bytes());
                }
                out.push(CheckpointBody {
                    origin: "o".into(),
                    size: t.size(),
                    root: t.root(),
                });
            }
        }
        out
    }

    #[tokio::test]
    async fn consistency_and_inclusion_from_tiles_verify_and_a_fork_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let cps = tiled_log(dir.path(), 70_000, &[1, 3, 256, 300, 65_536, 70_000]);
        let src = Source::Dir(dir.path().to_owned());
        for a in &cps {
            for b in &cps {
                let r = prove_consistent(&src, a, b).await;
                if a.size <= b.size {
                    assert!(r.is_ok(), "{} -> {}: {r:?}", a.size, b.size);
                } else {
                    assert!(matches!(r, Err(TiledError::Rollback { .. })));
                }
            }
        }
        let last = cps.last().unwrap();
        for i in [0u64, 255, 256, 65_535, 69_999] {
            let leaf = leaf_hash(format!("leaf {i}").as_bytes());
            prove_included(&src, i, &leaf, last).await.unwrap();
            let other = leaf_hash(b"another");
            assert!(prove_included(&src, i, &other, last).await.is_err());
        }
        let leaves = leaf_hashes(&src, 250, 300, &cps[3]).await.unwrap();
        assert_eq!(leaves[10], leaf_hash(b"leaf 260"));

        // A checkpoint of another tree of size 300: not a prefix, and its root does not
        // authenticate the tiles served.
        let mut forked = cps[3].clone();
        forked.root[0] ^= 1;
        assert!(matches!(
            prove_consistent(&src, &forked, last).await,
            Err(TiledError::Inconsistent { .. })
        ));
        assert!(matches!(
            prove_consistent(&src, &cps[1], &forked).await,
            Err(TiledError::Tiles { .. })
        ));
        assert!(matches!(
            prove_consistent(&src, &forked, &cps[3]).await,
            Err(TiledError::Fork { size: 300 })
        ));
    }
}
