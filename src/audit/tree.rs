//! The RFC 6962 tree rebuilt leaf by leaf from the entries, in O(log n) memory, and the
//! C2SP tlog-tiles hash tiles it implies. Spec code: no I/O.
//!
//! Written from RFC 6962 §2.1 and the tlog-tiles spec with [`super::proof`]'s hashes, not
//! with the log's `tlog_tiles` code, so the auditor is an independent second implementation
//! (the tests cross-check the two).
//!
//! The tree keeps the *compact range* of the leaves so far: the roots of its complete
//! subtrees, largest (leftmost) first, at most 64. The root of the whole tree folds them
//! right to left. Every complete subtree of height `8 × L` is also the next hash of the
//! level-`L` tile, so the tiles fall out of the same merges: one buffer of at most 256 hashes
//! per level, handed out as a [`DueTile`] when it fills (a full tile) or at the end (the
//! partial tile of this tree size).

use super::proof::{node_hash, Digest32};
use crate::log::tiles::{Resource, TILE_WIDTH};
use sha2::{Digest as _, Sha256};

/// Tile levels a tree of at most 2^64 leaves can have: level `L` holds hashes at height 8L,
/// and a height-64 node would need 2^64 leaves.
pub const TILE_LEVELS: usize = 8;

/// A tile whose content the entries now determine: fetch it and compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTile {
    pub level: u8,
    pub index: u64,
    /// The hashes the tile must hold, in order; 256 for a full tile, fewer for a partial.
    pub hashes: Vec<Digest32>,
}

impl DueTile {
    /// The tile's path after `/log/`, e.g. `tile/1/000.p/3`.
    pub fn path(&self) -> String {
        Resource::Tile {
            level: self.level,
            index: self.index,
            // At most 256 hashes by construction.
            width: self.hashes.len() as u32,
        }
        .path()
    }

    /// The log index of the first entry under this tile (its hash 0 covers entries from
    /// `index × 256 × 256^level`).
    pub fn first_entry(&self) -> u64 {
        (self.index * TILE_WIDTH).saturating_mul(1u64 << (8 * u32::from(self.level)).min(63))
    }

    /// The tile's exact bytes: the hashes concatenated.
    pub fn bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Compares a fetched tile with what it must hold; the error names the first hash that
    /// differs.
    pub fn check(&self, fetched: &[u8]) -> Result<(), String> {
        if fetched.len() != self.hashes.len() * 32 {
            return Err(format!(
                "{} bytes, expected {} ({} hashes)",
                fetched.len(),
                self.hashes.len() * 32,
                self.hashes.len()
            ));
        }
        for (i, (got, want)) in fetched.chunks_exact(32).zip(&self.hashes).enumerate() {
            if got != want {
                return Err(format!(
                    "hash {i} (node {} at height {}) differs from the one recomputed from the entries",
                    self.index * TILE_WIDTH + i as u64,
                    8 * u32::from(self.level)
                ));
            }
        }
        Ok(())
    }
}

/// One tile level's hashes since its last full tile.
#[derive(Debug, Clone, Default)]
struct LevelBuf {
    /// Index of the tile being filled (= full tiles handed out so far).
    index: u64,
    hashes: Vec<Digest32>,
}

/// The tree being rebuilt.
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    size: u64,
    /// (height, hash) of each complete subtree of the compact range, leftmost first.
    /// Heights strictly decrease, so at most 64 entries.
    stack: Vec<(u32, Digest32)>,
    levels: [LevelBuf; TILE_LEVELS],
}

impl TreeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash; returns the full tiles it completes (at most one per level).
    pub fn push(&mut self, leaf: Digest32) -> Vec<DueTile> {
        let mut due = Vec::new();
        self.level_push(0, leaf, &mut due);
        let (mut height, mut hash) = (0u32, leaf);
        // Bounded: each turn pops one of at most 64 stack entries.
        while let Some(&(h, left)) = self.stack.last() {
            if h != height {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            height += 1;
            if height.is_multiple_of(8) && (height / 8) < TILE_LEVELS as u32 {
                self.level_push((height / 8) as usize, hash, &mut due);
            }
        }
        self.stack.push((height, hash));
        self.size += 1;
        due
    }

    fn level_push(&mut self, level: usize, hash: Digest32, due: &mut Vec<DueTile>) {
        let buf = &mut self.levels[level];
        buf.hashes.push(hash);
        if buf.hashes.len() as u64 == TILE_WIDTH {
            due.push(DueTile {
                level: level as u8,
                index: buf.index,
                hashes: std::mem::take(&mut buf.hashes),
            });
            buf.index += 1;
        }
    }

    /// The RFC 6962 root of the leaves so far (`SHA-256("")` for none).
    pub fn root(&self) -> Digest32 {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut root)) = it.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in it {
            root = node_hash(left, &root);
        }
        root
    }

    /// The partial tiles of the current size: one per level whose last tile is not full.
    pub fn partial_tiles(&self) -> Vec<DueTile> {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.hashes.is_empty())
            .map(|(level, b)| DueTile {
                level: level as u8,
                index: b.index,
                hashes: b.hashes.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::proof::leaf_hash;
    use crate::log::tree::HashStore;
    use tlog_tiles::record_hash;

    fn leaf(i: u64) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    #[test]
    fn roots_equal_the_logs_tree_at_every_size() {
        let mut ours = TreeBuilder::new();
        let mut theirs = HashStore::new();
        assert_eq!(ours.root(), <[u8; 32]>::from(Sha256::digest([])));
        for i in 0..1100u64 {
            ours.push(leaf_hash(&leaf(i)));
            theirs.append(record_hash(&leaf(i)));
            assert_eq!(ours.root(), theirs.root(i + 1).unwrap().0, "size {}", i + 1);
        }
    }

    #[test]
    fn tiles_equal_the_logs_tiles_full_and_partial() {
        // 70,000 leaves: 273 full level-0 tiles, one full level-1 tile (65,536 leaves), and
        // partial tiles at levels 0, 1 and 2 (one height-16 node).
        let n = 70_000u64;
        let mut ours = TreeBuilder::new();
        let mut theirs = HashStore::new();
        let mut full = Vec::new();
        for i in 0..n {
            full.extend(ours.push(leaf_hash(&leaf(i))));
            theirs.append(record_hash(&leaf(i)));
        }
        assert_eq!(full.len() as u64, n / 256 + 1);
        for t in full.iter().chain(&ours.partial_tiles()) {
            let w = t.hashes.len() as u32;
            assert_eq!(
                t.bytes(),
                theirs.tile(t.level, t.index, w).unwrap(),
                "{}",
                t.path()
            );
            assert!(t.check(&t.bytes()).is_ok());
        }
        let partial = ours.partial_tiles();
        let paths: Vec<String> = partial.iter().map(DueTile::path).collect();
        // 70,000 = 273 × 256 + 112; 273 = 256 + 17; 70,000 >> 16 = 1.
        assert_eq!(
            paths,
            ["tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"]
        );
        assert!(full.iter().any(|t| t.path() == "tile/1/000"));
    }

    #[test]
    fn a_changed_or_short_tile_is_named() {
        let mut t = TreeBuilder::new();
        for i in 0..3 {
            t.push(leaf_hash(&leaf(i)));
        }
        let tile = &t.partial_tiles()[0];
        assert_eq!(tile.path(), "tile/0/000.p/3");
        let mut bytes = tile.bytes();
        assert!(tile.check(&bytes[..64]).unwrap_err().contains("64 bytes"));
        bytes[70] ^= 1;
        assert!(tile.check(&bytes).unwrap_err().starts_with("hash 2 "));
    }
}
