//! RFC 9162 §2.1 proof verification, written straight from the RFC and independent of the
//! log's tree code (which uses `tlog_tiles`), so each checks the other. Spec code: no I/O.

use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash.
pub type Digest32 = [u8; 32];

/// RFC 6962 leaf hash: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Digest32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Digest32, right: &Digest32) -> Digest32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 9162 §2.1.3.2: whether `path` proves leaf `leaf` at `index` in the tree of `size`
/// leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Digest32,
    path: &[Digest32],
    root: &Digest32,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                // Bounded: fnode halves each turn until it is odd or zero.
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: whether `path` proves the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Digest32,
    new_root: &Digest32,
    path: &[Digest32],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return path.is_empty() && old_root == new_root;
    }
    let mut path = path.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // Bounded: at most 64 shifts.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}
