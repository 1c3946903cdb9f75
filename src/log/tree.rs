//! The RFC 6962 Merkle tree, held as its *stored hashes* (the Go sumdb/tlog layout used by
//! `tlog_tiles`): every complete subtree's hash, about two per leaf. That is enough to answer
//! any root, inclusion proof, consistency proof or tile without the entries themselves.
//!
//! Spec code: no I/O. Memory is 32 bytes per stored hash (≈ 64 bytes per leaf), kept in
//! fixed-size chunks so growth never doubles a big vector (which would briefly need 2×).

use tlog_tiles::{
    prove_record, prove_tree, stored_hash_count, stored_hash_index, stored_hashes_for_record_hash,
    tree_hash, Hash, HashReader,
};

/// Hashes per chunk: 32,768 × 32 B = 1 MiB. Small enough that the unused tail of the last
/// chunk is negligible, large enough that the chunk table stays tiny.
const CHUNK_HASHES: usize = 1 << 15;

/// Errors of the tree: asking for something it does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    /// A size or index beyond the tree, or an empty range.
    #[error("out of range: {0}")]
    OutOfRange(String),
}

/// The stored hashes of an append-only RFC 6962 tree.
#[derive(Default)]
pub struct HashStore {
    chunks: Vec<Box<[Hash]>>,
    /// Number of stored hashes.
    len: u64,
    /// Number of leaves.
    size: u64,
}

impl HashStore {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of memory held by the hashes (allocated chunks).
    pub fn memory_bytes(&self) -> usize {
        self.chunks.len() * CHUNK_HASHES * std::mem::size_of::<Hash>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Hash]>>()
    }

    fn get(&self, i: u64) -> Option<Hash> {
        if i >= self.len {
            return None;
        }
        let i = usize::try_from(i).ok()?;
        Some(self.chunks[i / CHUNK_HASHES][i % CHUNK_HASHES])
    }

    fn push(&mut self, h: Hash) {
        // `len` counts hashes held in memory, so it fits in usize.
        let i = self.len as usize;
        if i.is_multiple_of(CHUNK_HASHES) {
            self.chunks
                .push(vec![Hash::default(); CHUNK_HASHES].into_boxed_slice());
        }
        self.chunks[i / CHUNK_HASHES][i % CHUNK_HASHES] = h;
        self.len += 1;
    }

    /// Appends one leaf, given its record hash (`SHA-256(0x00 ‖ entry)`).
    pub fn append(&mut self, leaf: Hash) {
        let new = self.prepare(&[leaf]);
        self.extend_prepared(&new, 1);
    }

    /// The stored hashes that appending `leaves` adds, computed with shared access only, so
    /// the writer can hash a whole batch while readers keep building receipts; then
    /// [`HashStore::extend_prepared`] takes exclusive access only to copy them in.
    pub fn prepare(&self, leaves: &[Hash]) -> Vec<Hash> {
        let mut extra: Vec<Hash> = Vec::with_capacity(leaves.len() * 2 + 64);
        for (n, &leaf) in (self.size..).zip(leaves) {
            let view = Overlay {
                base: self,
                extra: &extra,
            };
            // The reads `stored_hashes_for_record_hash` makes are of earlier complete
            // subtrees, which the store plus `extra` hold by construction; an error here would
            // be a bug in the index math, not something an input can cause.
            let new = stored_hashes_for_record_hash(n, leaf, &view)
                .expect("invariant: the hashes of earlier complete subtrees are stored");
            extra.extend(new);
        }
        extra
    }

    /// Appends `count` leaves whose stored hashes [`HashStore::prepare`] computed on this
    /// same store (nothing appended in between).
    pub fn extend_prepared(&mut self, hashes: &[Hash], count: u64) {
        for &h in hashes {
            self.push(h);
        }
        self.size += count;
        debug_assert_eq!(self.len, stored_hash_count(self.size));
    }

    /// Root hash of the tree's first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        if size > self.size {
            return Err(TreeError::OutOfRange(format!(
                "size {size} > {}",
                self.size
            )));
        }
        tree_hash(size, self).map_err(|e| TreeError::OutOfRange(e.to_string()))
    }

    /// RFC 6962 inclusion proof (audit path) of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        if index >= size || size > self.size {
            return Err(TreeError::OutOfRange(format!(
                "index {index} in size {size} (tree has {})",
                self.size
            )));
        }
        prove_record(size, index, self).map_err(|e| TreeError::OutOfRange(e.to_string()))
    }

    /// RFC 6962 consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        if old == 0 || old > new || new > self.size {
            return Err(TreeError::OutOfRange(format!(
                "consistency {old} -> {new} (tree has {})",
                self.size
            )));
        }
        prove_tree(new, old, self).map_err(|e| TreeError::OutOfRange(e.to_string()))
    }

    /// The bytes of the tlog-tiles hash tile at `level`, index `n`, width `w` (1..=256):
    /// `w` consecutive hashes at tree level `8 × level`, starting at `n × 256`.
    pub fn tile(&self, level: u8, n: u64, w: u32) -> Result<Vec<u8>, TreeError> {
        let out_of_range = || TreeError::OutOfRange(format!("tile {level}/{n}.p/{w}"));
        if w == 0 || w > 256 || level > 7 {
            return Err(out_of_range());
        }
        let tree_level = level * 8;
        let mut data = Vec::with_capacity(w as usize * 32);
        for i in 0..u64::from(w) {
            let x = n
                .checked_mul(256)
                .and_then(|s| s.checked_add(i))
                .ok_or_else(out_of_range)?;
            // The hash of node x at `tree_level` exists once its whole subtree is complete.
            let last_leaf = (x + 1)
                .checked_mul(1u64 << tree_level)
                .ok_or_else(out_of_range)?;
            if last_leaf > self.size {
                return Err(out_of_range());
            }
            let h = self
                .get(stored_hash_index(tree_level, x))
                .ok_or_else(out_of_range)?;
            data.extend_from_slice(&h.0);
        }
        Ok(data)
    }
}

/// The store plus hashes prepared but not yet appended.
struct Overlay<'a> {
    base: &'a HashStore,
    extra: &'a [Hash],
}

impl HashReader for Overlay<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                match i.checked_sub(self.base.len) {
                    None => self.base.get(i),
                    Some(k) => usize::try_from(k)
                        .ok()
                        .and_then(|k| self.extra.get(k).copied()),
                }
                .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl HashReader for HashStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| self.get(i).ok_or(tlog_tiles::Error::IndexesNotInTree))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::record_hash;

    #[test]
    fn memory_stays_under_100_bytes_per_leaf() {
        let mut t = HashStore::new();
        let n = 200_000u64;
        for i in 0..n {
            t.append(record_hash(&i.to_le_bytes()));
        }
        let per_leaf = t.memory_bytes() as f64 / n as f64;
        assert!(per_leaf <= 100.0, "{per_leaf} bytes per leaf");
    }

    #[test]
    fn prepared_batches_equal_one_by_one_appends() {
        let leaves: Vec<Hash> = (0..1000u64)
            .map(|i| record_hash(&i.to_le_bytes()))
            .collect();
        let mut one = HashStore::new();
        for &l in &leaves {
            one.append(l);
        }
        let mut batched = HashStore::new();
        let mut at = 0;
        for k in [1usize, 2, 3, 255, 256, 483] {
            let p = batched.prepare(&leaves[at..at + k]);
            batched.extend_prepared(&p, k as u64);
            at += k;
        }
        assert_eq!(at, 1000);
        for n in 1..=1000 {
            assert_eq!(one.root(n).unwrap(), batched.root(n).unwrap());
        }
    }

    #[test]
    fn out_of_range_requests_are_errors_not_panics() {
        let mut t = HashStore::new();
        for i in 0..10u64 {
            t.append(record_hash(&i.to_le_bytes()));
        }
        assert!(t.root(11).is_err());
        assert!(t.inclusion(10, 10).is_err());
        assert!(t.inclusion(0, 11).is_err());
        assert!(t.consistency(0, 5).is_err());
        assert!(t.consistency(6, 5).is_err());
        assert!(t.tile(0, 0, 11).is_err());
        assert!(t.tile(1, 0, 1).is_err());
        assert!(t.tile(0, u64::MAX, 1).is_err());
        assert_eq!(t.tile(0, 0, 10).unwrap().len(), 320);
    }
}
