//! The voter roll: who may vote. A text file, one voter a line (`<alg> <key>`), loaded once
//! at startup into flat tables with an open-addressing index, so a lookup is one hash and a
//! few probes and ten million voters fit in a few hundred MB.
//!
//! The parser ([`Roll::parse`]) reads any `BufRead` and holds no other I/O; [`Roll::load`] is
//! the thin file wrapper.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use sha2::{Digest as _, Sha256};

use super::wire::{b64_decode, Alg, PublicKey};

/// Most voters a roll may hold. Voter ids are `u32`, and the index stores `id + 1` in a
/// `u32` slot, so the id space ends just below 2^32; 2^31 keeps the index's power-of-two
/// size (twice the count) addressable too.
pub const MAX_VOTERS: usize = 1 << 31;

/// Pre-sizing from the file size stops here; a larger roll still loads, by regrowing. Caps
/// the address space reserved up front (a 100 GB file must not reserve 100 GB).
const MAX_PRESIZE_VOTERS: usize = 1 << 24;

/// Longest roll line accepted (a p256 line is 92 bytes). A longer line is refused before it
/// is buffered whole, so a corrupt roll (one 10 GB line) cannot exhaust memory at startup.
const MAX_LINE_BYTES: usize = 4096;

/// A voter's dense internal number, `0..roll.len()`. Not a line number: ids are assigned
/// per algorithm (all ed25519 voters first, then p256), which lets the roll store no id
/// table at all. State tables index by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoterId(pub u32);

/// Why a roll could not be loaded. Startup errors: the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error("reading the voter roll: {0}")]
    Io(#[from] std::io::Error),
    #[error("voter roll line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("voter roll holds more than {MAX_VOTERS} voters")]
    TooMany,
}

/// The loaded roll.
pub struct Roll {
    ed25519: KeyTable,
    p256: KeyTable,
    sha256: [u8; 32],
}

impl std::fmt::Debug for Roll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roll")
            .field("ed25519", &self.ed25519.len())
            .field("p256", &self.p256.len())
            .finish()
    }
}

/// Keys of one algorithm, back to back in one `Vec` (no per-key allocation: 10M boxed keys
/// would cost 16+ bytes of overhead each and scatter lookups over the heap), indexed by an
/// open-addressing table of `u32` positions.
struct KeyTable {
    stride: usize,
    keys: Vec<u8>,
    /// `0` = empty, else `position + 1`. Power-of-two length, kept at most half full, so
    /// linear probing stays short and a lookup of an absent key ends at an empty slot fast.
    slots: Vec<u32>,
    /// Seeded per process (SipHash-1-3): lookups carry keys an attacker chose, and a known
    /// hash function would let them aim every probe at the longest cluster.
    hasher: RandomState,
}

impl KeyTable {
    fn new(stride: usize, expected: usize) -> Self {
        KeyTable {
            stride,
            keys: Vec::with_capacity(expected.saturating_mul(stride)),
            slots: vec![0; slots_for(expected)],
            hasher: RandomState::new(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len() / self.stride
    }

    fn key_at(&self, pos: usize) -> &[u8] {
        &self.keys[pos * self.stride..(pos + 1) * self.stride]
    }

    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        // Slots are a power of two, so the mask maps any hash onto a slot.
        let mask = self.slots.len() - 1;
        let mut i = (self.hasher.hash_one(key) as usize) & mask;
        // Bounded: the table is at most half full, so an empty slot exists and the loop
        // ends within `slots.len()` steps.
        for _ in 0..self.slots.len() {
            match self.slots[i] {
                0 => return Err(i),
                s => {
                    let pos = (s - 1) as usize;
                    if self.key_at(pos) == key {
                        return Ok(pos);
                    }
                }
            }
            i = (i + 1) & mask;
        }
        unreachable!("roll index is at most half full, so probing always meets an empty slot")
    }

    /// Insert; `false` if the key is already present.
    fn insert(&mut self, key: &[u8]) -> bool {
        if (self.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.find(key) {
            Ok(_) => false,
            Err(slot) => {
                let pos = self.len();
                self.keys.extend_from_slice(key);
                // pos < MAX_VOTERS < u32::MAX, checked by the caller.
                self.slots[slot] = pos as u32 + 1;
                true
            }
        }
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(16);
        let mut slots = vec![0u32; new_len];
        let mask = new_len - 1;
        for pos in 0..self.len() {
            let mut i = (self.hasher.hash_one(self.key_at(pos)) as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = pos as u32 + 1;
        }
        self.slots = slots;
    }

    fn shrink(&mut self) {
        self.keys.shrink_to_fit();
    }
}

fn slots_for(expected: usize) -> usize {
    (expected.max(8) * 2).next_power_of_two()
}

impl Roll {
    /// Load the roll file at `path`. Errors name the offending line.
    pub fn load(path: impl AsRef<Path>) -> Result<Roll, RollError> {
        let file = File::open(path.as_ref())?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Roll::parse(BufReader::with_capacity(1 << 20, file), size)
    }

    /// Parse a roll from text. `size_hint_bytes` (the file size, or 0) pre-sizes the tables
    /// so a large roll loads without repeated regrowth.
    ///
    /// Format: one voter a line, `<alg> <key>` separated by ASCII whitespace; blank lines
    /// and lines starting with `#` are skipped. Refused, naming the line: an unknown alg, a
    /// key that is not canonical base64url of the right length, an Ed25519 key that is not
    /// a canonical encoding or has small order, a P-256 key that is not uncompressed SEC1
    /// (`0x04‖x‖y`), a duplicate.
    pub fn parse<R: BufRead>(mut reader: R, size_hint_bytes: u64) -> Result<Roll, RollError> {
        // The shortest voter line is an ed25519 one: 8 + 43 + 1 = 52 bytes; a p256 line is
        // 93. Over-estimating only reserves address space that is returned at the end.
        let hint = usize::try_from(size_hint_bytes).unwrap_or(usize::MAX);
        let mut ed = KeyTable::new(32, (hint / 52).min(MAX_PRESIZE_VOTERS));
        let mut p2 = KeyTable::new(65, (hint / 93).min(MAX_PRESIZE_VOTERS));
        let mut hasher = Sha256::new();
        let mut line = Vec::with_capacity(256);
        let mut line_no: u64 = 0;
        loop {
            line.clear();
            let n =
                Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.len() > MAX_LINE_BYTES {
                return Err(RollError::Line {
                    line: line_no,
                    reason: format!("longer than {MAX_LINE_BYTES} bytes"),
                });
            }
            hasher.update(&line);
            let bad = |reason: String| RollError::Line {
                line: line_no,
                reason,
            };
            let text = std::str::from_utf8(&line).map_err(|_| bad("not UTF-8".into()))?;
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let mut parts = text.split_ascii_whitespace();
            let (Some(alg), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected `<alg> <key>`".into()));
            };
            let alg = Alg::from_name(alg).ok_or_else(|| bad(format!("unknown alg {alg:?}")))?;
            let bytes = b64_decode(key)
                .ok_or_else(|| bad("key is not canonical base64url-nopad".into()))?;
            let key = PublicKey::from_bytes(alg, &bytes)
                .ok_or_else(|| bad(format!("{alg} key must be {} bytes", alg.key_len())))?;
            check_key(&key).map_err(|r| bad(r.into()))?;
            if ed.len() + p2.len() >= MAX_VOTERS {
                return Err(RollError::TooMany);
            }
            let table = match alg {
                Alg::Ed25519 => &mut ed,
                Alg::P256 => &mut p2,
            };
            if !table.insert(key.as_bytes()) {
                return Err(bad("duplicate voter key".into()));
            }
        }
        ed.shrink();
        p2.shrink();
        Ok(Roll {
            ed25519: ed,
            p256: p2,
            sha256: hasher.finalize().into(),
        })
    }

    /// The voter holding this key, if on the roll. O(1): one SipHash and a short probe.
    pub fn lookup(&self, key: &PublicKey) -> Option<VoterId> {
        match key {
            PublicKey::Ed25519(k) => self.ed25519.find(k).ok().map(|p| VoterId(p as u32)),
            PublicKey::P256(k) => self
                .p256
                .find(k)
                .ok()
                .map(|p| VoterId((self.ed25519.len() + p) as u32)),
        }
    }

    /// The voter's algorithm and key bytes: the inverse of [`Roll::lookup`] (the auditor's
    /// tally file is sorted by them).
    pub fn key_of(&self, voter: VoterId) -> Option<(Alg, &[u8])> {
        let i = voter.0 as usize;
        let ed = self.ed25519.len();
        if i < ed {
            Some((Alg::Ed25519, self.ed25519.key_at(i)))
        } else if i - ed < self.p256.len() {
            Some((Alg::P256, self.p256.key_at(i - ed)))
        } else {
            None
        }
    }

    /// SHA-256 of the roll file's exact bytes, as published in the manifest.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.ed25519.len() + self.p256.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Refuse keys that would make the signature rule meaningless or ambiguous.
///
/// Ed25519 verification follows ZIP-215 (see `verify.rs`), which accepts any key encoding
/// and uses the cofactored equation. Under it a *small-order* key verifies forged
/// signatures on any message, and a *non-canonical* encoding (y ≥ p) names the same point as
/// another key. Both are refused here, at roll load, so they can never be anyone's key.
///
/// Not checked (it would cost ~5 µs a key, 50 s for 10M voters): that an Ed25519 key
/// decompresses to a curve point, or that a P-256 key is on the curve. Such a key is
/// harmless: no signature ever verifies against it, in the server or the auditor.
pub fn check_key(key: &PublicKey) -> Result<(), &'static str> {
    match key {
        PublicKey::Ed25519(k) => {
            if !ed25519_y_is_canonical(k) {
                return Err("ed25519 key is not a canonical encoding (y >= p)");
            }
            let mut masked = *k;
            masked[31] &= 0x7f;
            if small_order_encodings().contains(&masked) {
                return Err("ed25519 key has small order");
            }
            Ok(())
        }
        PublicKey::P256(k) => {
            if k[0] != 0x04 {
                return Err("p256 key must be uncompressed SEC1 (first byte 0x04)");
            }
            Ok(())
        }
    }
}

/// y (the low 255 bits, little-endian) < p = 2^255 − 19.
fn ed25519_y_is_canonical(k: &[u8; 32]) -> bool {
    // y >= p only if bits 8..255 are all ones and the low byte is >= 0xed.
    let top_all_ones = k[31] & 0x7f == 0x7f && k[1..31].iter().all(|&b| b == 0xff);
    !(top_all_ones && k[0] >= 0xed)
}

/// The canonical encodings of the eight small-order points, sign bit cleared (the sign
/// bit is masked before comparing, which also catches `x = 0` points written with the sign
/// bit set). Computed from curve25519-dalek rather than typed in.
fn small_order_encodings() -> &'static [[u8; 32]] {
    static SET: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    SET.get_or_init(|| {
        EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut e = p.compress().to_bytes();
                e[31] &= 0x7f;
                e
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::wire::b64;

    fn ed_key(i: u8) -> [u8; 32] {
        // Valid, distinct public keys from seeds.
        ed25519_dalek::SigningKey::from_bytes(&[i; 32])
            .verifying_key()
            .to_bytes()
    }

    fn parse(text: &str) -> Result<Roll, RollError> {
        Roll::parse(text.as_bytes(), text.len() as u64)
    }

    #[test]
    fn every_voter_is_found_and_strangers_are_not() {
        let mut text = String::from("# demo roll\n\n");
        for i in 0..200u8 {
            text += &format!("ed25519 {}\n", b64(&ed_key(i)));
        }
        let mut p = [0x04u8; 65];
        p[1] = 1;
        text += &format!("p256 {}\n", b64(&p));
        let roll = parse(&text).unwrap();
        assert_eq!(roll.len(), 201);
        let mut ids = std::collections::HashSet::new();
        for i in 0..200u8 {
            let id = roll.lookup(&PublicKey::Ed25519(ed_key(i))).unwrap();
            assert!(ids.insert(id));
            assert!((id.0 as usize) < roll.len());
        }
        assert_eq!(roll.lookup(&PublicKey::P256(p)), Some(VoterId(200)));
        assert_eq!(roll.lookup(&PublicKey::Ed25519(ed_key(201))), None);
        let mut q = p;
        q[2] = 9;
        assert_eq!(roll.lookup(&PublicKey::P256(q)), None);
        assert_eq!(
            roll.sha256(),
            <[u8; 32]>::from(Sha256::digest(text.as_bytes()))
        );
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let good = format!("ed25519 {}\n", b64(&ed_key(1)));
        let cases: Vec<(String, &str)> = vec![
            (format!("{good}{good}"), "duplicate"),
            (format!("{good}rsa {}\n", b64(&ed_key(2))), "unknown alg"),
            (format!("{good}ed25519 {}=\n", b64(&ed_key(2))), "base64"),
            (format!("{good}ed25519 {}\n", b64(&[1u8; 31])), "32 bytes"),
            (
                format!("{good}ed25519 {} extra\n", b64(&ed_key(2))),
                "expected",
            ),
            (format!("{good}ed25519\n"), "expected"),
            (format!("{good}p256 {}\n", b64(&[2u8; 65])), "uncompressed"),
            (format!("{good}ed25519 {}\n", b64(&[0xff; 32])), "canonical"),
            (
                format!("{good}ed25519 {}\n", b64(&[0u8; 32])),
                "small order",
            ),
        ];
        for (text, want) in cases {
            match parse(&text) {
                Err(RollError::Line { line: 2, reason }) => {
                    assert!(reason.contains(want), "{reason} should mention {want}")
                }
                other => panic!("{text:?}: expected a line-2 error, got {other:?}"),
            }
        }
    }

    #[test]
    fn every_small_order_encoding_is_refused() {
        for p in EIGHT_TORSION.iter() {
            let enc = p.compress().to_bytes();
            for sign in [0u8, 0x80] {
                let mut k = enc;
                k[31] = (k[31] & 0x7f) | sign;
                assert!(check_key(&PublicKey::Ed25519(k)).is_err(), "{k:?}");
            }
        }
        // A non-canonical encoding of a small-order point: y = p + 1 (≡ 1, the identity).
        let mut k = [0xffu8; 32];
        k[0] = 0xee;
        k[31] = 0x7f;
        assert!(check_key(&PublicKey::Ed25519(k)).is_err());
        // A real key passes.
        assert!(check_key(&PublicKey::Ed25519(ed_key(3))).is_ok());
    }

    #[test]
    fn overlong_line_is_refused_without_buffering_it() {
        let text = format!("# {}\n", "x".repeat(10_000));
        match parse(&text) {
            Err(RollError::Line { line: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_absurd_size_hint_reserves_a_bounded_amount() {
        let text = format!("ed25519 {}\n", b64(&ed_key(1)));
        let roll = Roll::parse(text.as_bytes(), u64::MAX).unwrap();
        assert_eq!(roll.len(), 1);
    }

    #[test]
    fn index_grows_past_its_initial_size() {
        // size hint 0: the table starts tiny and must regrow many times.
        let mut text = String::new();
        for i in 0..=255u8 {
            text += &format!("ed25519 {}\n", b64(&ed_key(i)));
        }
        let roll = Roll::parse(text.as_bytes(), 0).unwrap();
        assert_eq!(roll.len(), 256);
        for i in 0..=255u8 {
            assert!(roll.lookup(&PublicKey::Ed25519(ed_key(i))).is_some());
        }
    }
}
