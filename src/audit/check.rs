//! Auditing a whole log from its public files: the checks, with no I/O (the fetching is in
//! [`super::fetch`], the order of work in [`super::run`]).
//!
//! An audit does not stop at the first broken rule: every violation is recorded with the
//! entry index it concerns and a stable kind ([`super::report`]), and the audit goes on, so
//! one run names every tampering in the log. Only what makes the rest uncheckable stops it
//! (neither an entry bundle nor its level-0 tile gives the leaf hashes to go on with).
//!
//! Two steps per entry bundle:
//! - [`prepare_bundle`] — pure and independent of every other bundle, so bundles are
//!   prepared in parallel: split the bundle, line its entries up with the level-0 tile
//!   (the log's commitment to each leaf hash: an entry missing from the bundle is named by
//!   its index, a changed one by its index), decode each entry strictly and re-encode it,
//!   verify the bundle's ballot signatures as one batch with the server's own
//!   [`crate::ballot::verify_signatures`] (ZIP-215 / ring P-256: the batch accepts exactly
//!   what one-by-one checks would; a failed batch is re-checked one by one to name each
//!   entry).
//! - [`LogAudit::apply`] — in log order: the manifest against the roll and the key, the
//!   election and revote rules through the server's own state machine
//!   ([`VoterStates::replay`]) rebuilt from nothing but the roll file and the manifest, the
//!   tree and its tiles ([`super::tree`]), and the `--previous` root at its size.
//!
//! [`LogAudit::finish`] compares the rebuilt root with the checkpoint's and sums up.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::proof::{leaf_hash, Digest32};
use super::receipt::{CheckpointBody, ReceiptError};
use super::report::{Violation, ViolationKind, Violations, DEFAULT_KEEP_PER_KIND};
use super::tally::{TallyFile, TallyWriter};
use super::tree::{DueTile, TreeBuilder};
use crate::ballot::wire::ballot_digest;
use crate::ballot::{
    decode_entry, verify_signatures, Alg, BallotDigest, Entry, LoggedBallot, Manifest,
    RevotePolicy, Roll, SignedItem, VoterId, VoterStates,
};
use crate::log::tiles::{Resource, TILE_WIDTH};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why an audit stopped before its end. A log that breaks rules does not stop an audit
/// (those are [`Violation`]s); these are what leaves nothing more to check, or what makes
/// the audit's own result meaningless (the auditor's trouble, a key of another log).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("checkpoint: {0}")]
    Checkpoint(ReceiptError),
    /// The verifier key given names another log than the checkpoint's: the auditor's
    /// input is wrong, nothing is shown about the log.
    #[error("checkpoint: {0}")]
    KeyOfAnotherLog(String),
    #[error("previous checkpoint: {0}")]
    Previous(ReceiptError),
    #[error("the checkpoint's tree is empty: there is no manifest (entry 0)")]
    Empty,
    /// The auditor could not fetch it (timeout, refused connection, unexpected status):
    /// proves nothing about the log.
    #[error("{path}: could not fetch: {reason}")]
    Fetch { path: String, reason: String },
    /// The log must serve this file and does not.
    #[error("{path}: not served by {from}")]
    NotServed { path: String, from: String },
    /// The log served something no honest log serves (e.g. larger than any such file).
    #[error("{path}: {reason}")]
    Fetched { path: String, reason: String },
    /// The tree cannot be rebuilt past this bundle.
    #[error("{path}: {reason}")]
    Bundle { path: String, reason: String },
    /// Writing the `--tally` file failed.
    #[error("writing the tally file: {0}")]
    Tally(String),
}

impl AuditError {
    /// Whether the failure is the log's (it does not serve a file it must, or serves one
    /// that stops the audit) rather than the auditor's own trouble reaching it (timeouts,
    /// refused connections) or its own inputs, which proves nothing about the log.
    pub fn is_log_fault(&self) -> bool {
        !matches!(
            self,
            AuditError::Fetch { .. }
                | AuditError::Checkpoint(ReceiptError::Key(_))
                | AuditError::KeyOfAnotherLog(_)
                | AuditError::Tally(_)
        )
    }

    /// The violation a log-fault stop is recorded as (in the report of an audit that could
    /// not reach the end).
    pub fn violation(&self) -> Violation {
        let kind = match self {
            AuditError::NotServed { .. } => ViolationKind::NotServed,
            AuditError::Checkpoint(_) | AuditError::Previous(_) => {
                ViolationKind::CheckpointMalformed
            }
            _ => ViolationKind::BundleMalformed,
        };
        Violation::log(kind, self.to_string())
    }
}

/// The path of entry bundle `index` of width `width`, after `/log/`.
pub fn bundle_path(index: u64, width: u32) -> String {
    Resource::Entries { index, width }.path()
}

/// The path of level-0 tile `index` of width `width`, after `/log/`.
fn leaf_tile_path(index: u64, width: u32) -> String {
    Resource::Tile {
        level: 0,
        index,
        width,
    }
    .path()
}

/// The first `width` entries of a bundle (all of it if it holds fewer: then
/// [`prepare_bundle`] says which are missing).
pub fn bundle_prefix(bundle: &[u8], width: u32) -> &[u8] {
    let mut at = 0usize;
    // Bounded: at most `width` (≤ 256) turns.
    for _ in 0..width {
        let Some(len) = bundle.get(at..at + 2) else {
            return bundle;
        };
        at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
    &bundle[..at.min(bundle.len())]
}

/// The bundles of a tree of `size` leaves: (index, width), in order.
pub fn bundles(size: u64) -> impl Iterator<Item = (u64, u32)> {
    (0..size.div_ceil(TILE_WIDTH)).map(move |n| {
        // At most 256, so the cast is exact.
        let width = (size - n * TILE_WIDTH).min(TILE_WIDTH) as u32;
        (n, width)
    })
}

/// One entry bundle, prepared.
#[derive(Debug, Clone)]
pub struct PreparedBundle {
    pub index: u64,
    pub width: u32,
    /// The `width` leaf hashes the tree goes on with: the level-0 tile's (the log's
    /// commitment, checked against the entries here and against the tiles above and the
    /// root later), or the entries' own if the tile is not served. `None`: neither gives
    /// them, and the tree cannot be rebuilt past this bundle.
    pub leaves: Option<Vec<Digest32>>,
    /// The entries that decoded canonically and whose signatures verify, with their log
    /// index, in order: what the rules are applied to.
    pub entries: Vec<(u64, Entry)>,
    /// Digest `k` ([`LoggedBallot::digest`]) of `entries[k]`, `None` for the manifest:
    /// computed here, on the parallel threads, from the signed message the signature check
    /// built. Computed in order instead, it hashed every payload twice more on the one core
    /// the in-order path runs on.
    pub digests: Vec<Option<BallotDigest>>,
    /// What is wrong with the bundle, its tile or its entries on their own.
    pub violations: Vec<Violation>,
}

/// Splits entry bundle `index` (which must hold `width` entries), lines its entries up with
/// the level-0 tile `leaf_tile`, decodes and checks every entry on its own: strict
/// decoding, canonical re-encoding, entry 0 a manifest and no other entry one, every
/// ballot's signature. `None` for a file the log did not serve (the caller records that).
///
/// Lining up: with as many entries as the tile has hashes, entry `i` must hash to hash `i`
/// (else `entry_hash_mismatch` at its index). With fewer, each entry is matched to the next
/// hash it equals; the hashes skipped over are `missing_entry` at their index, so a dropped
/// ballot is named by its index even though every entry after it has moved up.
pub fn prepare_bundle(
    index: u64,
    width: u32,
    bundle: Option<&[u8]>,
    leaf_tile: Option<&[u8]>,
) -> PreparedBundle {
    let first = index * TILE_WIDTH;
    let width_n = width as usize;
    let path = bundle_path(index, width);
    let mut violations = Vec::new();

    // Split. Bounded: at most TILE_WIDTH + 1 turns, each consuming at least 2 bytes.
    let mut raw: Vec<&[u8]> = Vec::with_capacity(width_n);
    if let Some(mut rest) = bundle {
        while !rest.is_empty() {
            let n = raw.len();
            if n == width_n {
                // Named by the bundle's last entry, the one the stray bytes follow (found
                // by the audit_bundle fuzz target: `first + n` was past the bundle).
                violations.push(Violation::at(
                    first + n as u64 - 1,
                    ViolationKind::BundleMalformed,
                    format!("{path}: {} bytes after its {width} entries", rest.len()),
                ));
                break;
            }
            let [a, b, tail @ ..] = rest else {
                violations.push(Violation::at(
                    first + n as u64,
                    ViolationKind::BundleMalformed,
                    format!("{path}: entry {n} of the bundle: truncated length"),
                ));
                break;
            };
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            if tail.len() < len {
                violations.push(Violation::at(
                    first + n as u64,
                    ViolationKind::BundleMalformed,
                    format!(
                        "{path}: entry {n} of the bundle: {len} bytes announced, {} left",
                        tail.len()
                    ),
                ));
                break;
            }
            let (bytes, more) = tail.split_at(len);
            raw.push(bytes);
            rest = more;
        }
    }
    let hashes: Vec<Digest32> = raw.iter().map(|e| leaf_hash(e)).collect();

    // The tile, if served and of the right length.
    let tile: Option<Vec<Digest32>> = leaf_tile.and_then(|t| {
        if t.len() == width_n * 32 {
            Some(
                t.chunks_exact(32)
                    // Exactly 32 bytes by `chunks_exact`.
                    .map(|c| <Digest32>::try_from(c).expect("32-byte chunk"))
                    .collect(),
            )
        } else {
            violations.push(Violation::at(
                first,
                ViolationKind::TileMismatch,
                format!(
                    "{}: {} bytes, expected {} ({width} hashes)",
                    leaf_tile_path(index, width),
                    t.len(),
                    width_n * 32
                ),
            ));
            None
        }
    });

    // Line up: slot i (log index first + i) ← raw entry j.
    let mut slots: Vec<Option<usize>> = vec![None; width_n];
    let leaves = match tile {
        Some(t) => {
            let tile_path = leaf_tile_path(index, width);
            let mismatch = |i: usize| {
                Violation::at(
                    first + i as u64,
                    ViolationKind::EntryHashMismatch,
                    format!(
                        "its leaf hash is not hash {i} of {tile_path}: the entry or the tile was changed"
                    ),
                )
            };
            if bundle.is_some() && raw.len() >= width_n {
                for (i, slot) in slots.iter_mut().enumerate() {
                    *slot = Some(i);
                    if hashes[i] != t[i] {
                        violations.push(mismatch(i));
                    }
                }
            } else if bundle.is_some() {
                let mut j = 0;
                // Bounded: i takes width ≤ 256 values; each `contains` scans ≤ 256 hashes.
                for i in 0..width_n {
                    if j >= raw.len() {
                        violations.push(Violation::at(
                            first + i as u64,
                            ViolationKind::MissingEntry,
                            format!("not in {path}, though {tile_path} commits to its hash"),
                        ));
                        continue;
                    }
                    if hashes[j] == t[i] {
                        slots[i] = Some(j);
                        j += 1;
                    } else if t[i + 1..].contains(&hashes[j]) {
                        violations.push(Violation::at(
                            first + i as u64,
                            ViolationKind::MissingEntry,
                            format!("not in {path}, though {tile_path} commits to its hash"),
                        ));
                    } else {
                        slots[i] = Some(j);
                        j += 1;
                        violations.push(mismatch(i));
                    }
                }
            }
            Some(t)
        }
        None if raw.len() >= width_n => {
            for (i, slot) in slots.iter_mut().enumerate() {
                *slot = Some(i);
            }
            Some(hashes[..width_n].to_vec())
        }
        None => None,
    };

    // Decode what each slot holds.
    let mut entries: Vec<(u64, Entry)> = Vec::with_capacity(width_n);
    for (i, slot) in slots.iter().enumerate() {
        let Some(j) = *slot else { continue };
        match decode_checked(first + i as u64, raw[j]) {
            Ok(e) => entries.push((first + i as u64, e)),
            Err(v) => violations.push(v),
        }
    }

    // Every ballot's signature, as one batch.
    let messages: Vec<Option<Vec<u8>>> = entries
        .iter()
        .map(|(_, e)| match e {
            Entry::Ballot(lb) => Some(lb.ballot.signed_message()),
            Entry::Manifest(_) => None,
        })
        .collect();
    let items: Vec<(usize, SignedItem<'_>)> = entries
        .iter()
        .zip(&messages)
        .enumerate()
        .filter_map(|(k, ((_, e), m))| match (e, m) {
            (Entry::Ballot(lb), Some(m)) => {
                Some((k, (&lb.ballot.key, m.as_slice(), &lb.ballot.sig)))
            }
            _ => None,
        })
        .collect();
    let just_items: Vec<SignedItem<'_>> = items.iter().map(|(_, it)| *it).collect();
    let verdicts = verify_signatures(&just_items);
    let mut bad = vec![false; entries.len()];
    for ((k, _), verdict) in items.iter().zip(&verdicts) {
        if verdict.is_err() {
            bad[*k] = true;
        }
    }
    drop(just_items);
    drop(items);
    let mut kept = Vec::with_capacity(entries.len());
    let mut digests = Vec::with_capacity(entries.len());
    for (((at, e), bad), message) in entries.into_iter().zip(bad).zip(messages) {
        match (&e, bad, message) {
            (Entry::Ballot(lb), true, _) => violations.push(signature_fault(at, lb)),
            (Entry::Ballot(lb), false, Some(m)) => {
                digests.push(Some(ballot_digest(&m, &lb.ballot.sig)));
                kept.push((at, e));
            }
            _ => {
                digests.push(None);
                kept.push((at, e));
            }
        }
    }
    violations.sort_by_key(|v| v.index);
    PreparedBundle {
        index,
        width,
        leaves,
        entries: kept,
        digests,
        violations,
    }
}

/// Entry `index` on its own, but for its signature ([`prepare_bundle`] checks those a bundle
/// at a time): decodes, is the one encoding of what it decodes to, and is the right kind for
/// its place.
fn decode_checked(index: u64, bytes: &[u8]) -> Result<Entry, Violation> {
    let malformed = |reason: String| Violation::at(index, ViolationKind::EntryMalformed, reason);
    let entry = decode_entry(bytes).map_err(|e| malformed(format!("does not decode: {e}")))?;
    match (&entry, index) {
        (Entry::Manifest(m), 0) => {
            let again = m
                .encode()
                .map_err(|e| malformed(format!("manifest: {e}")))?;
            if again != bytes {
                return Err(malformed(
                    "the manifest is not in its canonical encoding".into(),
                ));
            }
        }
        (Entry::Ballot(_), 0) => {
            return Err(Violation::at(
                0,
                ViolationKind::ManifestMissing,
                "entry 0 is a ballot, not the manifest",
            ))
        }
        (Entry::Manifest(_), _) => {
            return Err(Violation::at(
                index,
                ViolationKind::ExtraManifest,
                "a second manifest",
            ))
        }
        (Entry::Ballot(lb), _) => {
            if lb.encode() != bytes {
                return Err(malformed("not in its canonical encoding".into()));
            }
        }
    }
    Ok(entry)
}

fn signature_fault(index: u64, lb: &LoggedBallot) -> Violation {
    Violation::at(
        index,
        ViolationKind::BadSignature,
        format!(
            "the {} signature of voter {} (seq {}) does not verify",
            lb.ballot.alg(),
            lb.ballot.voter_text(),
            lb.ballot.seq()
        ),
    )
}

/// What an audit found, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub origin: String,
    pub election: String,
    /// `last` or `none` (empty if the manifest could not be read).
    pub revote: String,
    pub tree_size: u64,
    /// Base64, as in the checkpoint.
    pub root: String,
    /// Entries checked (the tree size, unless the audit stopped).
    pub checked: u64,
    /// Voters on the roll.
    pub roll_voters: u64,
    /// Ballot entries (every version, revotes included).
    pub ballots: u64,
    /// Ballots whose signature verified, by algorithm.
    pub ed25519_ballots: u64,
    pub p256_ballots: u64,
    /// Voters with at least one ballot that kept every rule.
    pub distinct_voters: u64,
    /// Ballots that count under the policy: each voter's last accepted one (`last`), the
    /// only one (`none`).
    pub counted_ballots: u64,
    /// Ballots entries that do not count (replaced by a later one, or breaking a rule).
    pub superseded_ballots: u64,
    /// Size of the `--previous` checkpoint this tree was shown to extend, if one was given.
    pub extends_previous_size: Option<u64>,
    /// Violations by kind (all counted, whatever `--max-per-kind` kept).
    pub violation_counts: BTreeMap<ViolationKind, u64>,
    /// The `--tally` file's SHA-256 (lowercase hex), if one was written.
    pub tally_sha256: Option<String>,
}

/// The human summary `urna audit` prints, one field a line.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "origin:            {}", self.origin)?;
        writeln!(
            f,
            "election:          {} (revote {})",
            self.election, self.revote
        )?;
        writeln!(f, "tree size:         {}", self.tree_size)?;
        writeln!(f, "root:              {}", self.root)?;
        writeln!(f, "checked:           {}", self.checked)?;
        writeln!(f, "roll voters:       {}", self.roll_voters)?;
        writeln!(
            f,
            "ballots:           {} ({} ed25519, {} p256)",
            self.ballots, self.ed25519_ballots, self.p256_ballots
        )?;
        writeln!(f, "distinct voters:   {}", self.distinct_voters)?;
        writeln!(f, "counted ballots:   {}", self.counted_ballots)?;
        writeln!(f, "superseded:        {}", self.superseded_ballots)?;
        if let Some(p) = self.extends_previous_size {
            writeln!(f, "extends previous:  size {p}")?;
        }
        if let Some(t) = &self.tally_sha256 {
            writeln!(f, "tally sha256:      {t}")?;
        }
        Ok(())
    }
}

/// Everything an audit found.
#[derive(Debug)]
pub struct Report {
    pub summary: Summary,
    pub violations: Violations,
    /// Whether every entry of the checkpoint's tree was checked.
    pub complete: bool,
    pub tally: Option<TallyFile>,
}

impl Report {
    /// Every check passed.
    pub fn ok(&self) -> bool {
        self.complete && self.violations.is_empty()
    }
}

/// The in-order part of an audit.
pub struct LogAudit {
    roll: Arc<Roll>,
    verifier_key: String,
    checkpoint: CheckpointBody,
    previous: Option<CheckpointBody>,
    tree: TreeBuilder,
    /// Built from the manifest once entry 0 is applied.
    states: Option<(VoterStates, Manifest)>,
    violations: Violations,
    tally: Option<TallyWriter>,
    /// A tally write failed: the audit goes on, the tally is not written.
    tally_error: Option<String>,
    ed25519: u64,
    p256: u64,
}

fn b64(h: &Digest32) -> String {
    base64::Engine::encode(&B64, h)
}

impl LogAudit {
    /// An audit of the tree `checkpoint` (already verified under `verifier_key`, or its
    /// failure recorded with [`LogAudit::record`]), against `roll`, optionally proving it
    /// extends `previous` (verified under the same key).
    pub fn new(
        roll: Arc<Roll>,
        verifier_key: &str,
        checkpoint: CheckpointBody,
        previous: Option<CheckpointBody>,
    ) -> Result<LogAudit, AuditError> {
        if checkpoint.size == 0 {
            return Err(AuditError::Empty);
        }
        let mut violations = Violations::new(DEFAULT_KEEP_PER_KIND);
        let mut previous = previous;
        if let Some(p) = &previous {
            if p.size > checkpoint.size {
                violations.push(Violation::log(
                    ViolationKind::LogShrank,
                    format!(
                        "previous checkpoint has size {}, more than the current {}: the log shrank",
                        p.size, checkpoint.size
                    ),
                ));
                previous = None;
            } else if p.size == 0 && p.root != TreeBuilder::new().root() {
                violations.push(Violation::log(
                    ViolationKind::NotExtended,
                    format!(
                        "the previous checkpoint of size 0 has root {}, not the empty tree's {}",
                        b64(&p.root),
                        b64(&TreeBuilder::new().root())
                    ),
                ));
            }
        }
        Ok(LogAudit {
            roll,
            verifier_key: verifier_key.trim().to_owned(),
            checkpoint,
            previous,
            tree: TreeBuilder::new(),
            states: None,
            violations,
            tally: None,
            tally_error: None,
            ed25519: 0,
            p256: 0,
        })
    }

    /// Keep the first `n` violations of each kind in full (all are counted).
    pub fn keep_per_kind(mut self, n: usize) -> LogAudit {
        let mut v = Violations::new(n);
        for old in self.violations.kept() {
            v.push(old.clone());
        }
        self.violations = v;
        self
    }

    /// Write the tally-ready set through `tally` as the audit goes.
    pub fn with_tally(mut self, tally: TallyWriter) -> LogAudit {
        self.tally = Some(tally);
        self
    }

    /// Records a violation found outside the bundles (the checkpoint, a file not served).
    pub fn record(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// The tree size being audited.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// Entries applied so far.
    pub fn checked(&self) -> u64 {
        self.tree.size()
    }

    /// Applies the next bundle, in order, recording what it breaks. Returns the full hash
    /// tiles above level 0 it completes, for the caller to fetch and
    /// [`LogAudit::check_tile`]. `Err` only when the tree cannot be rebuilt past this
    /// bundle (no leaf hashes, or out of order): the audit stops there.
    pub fn apply(&mut self, bundle: PreparedBundle) -> Result<Vec<DueTile>, AuditError> {
        let path = bundle_path(bundle.index, bundle.width);
        if bundle.index * TILE_WIDTH != self.tree.size() {
            return Err(AuditError::Bundle {
                path,
                reason: format!("applied out of order at tree size {}", self.tree.size()),
            });
        }
        for v in bundle.violations {
            self.violations.push(v);
        }
        let Some(leaves) = bundle.leaves else {
            return Err(AuditError::Bundle {
                path,
                reason: format!(
                    "neither the bundle nor its level-0 tile gives the {} leaf hashes from entry {}: the tree cannot be rebuilt further",
                    bundle.width,
                    self.tree.size()
                ),
            });
        };
        for ((index, entry), digest) in bundle.entries.iter().zip(&bundle.digests) {
            self.rules(*index, entry, *digest);
        }
        let mut due = Vec::new();
        for leaf in leaves {
            // Level-0 tiles are the leaves themselves, checked in `prepare_bundle`.
            due.extend(self.tree.push(leaf).into_iter().filter(|t| t.level > 0));
            if let Some(p) = &self.previous {
                if p.size == self.tree.size() && self.tree.root() != p.root {
                    self.violations.push(Violation::log(
                        ViolationKind::NotExtended,
                        format!(
                            "the tree does not extend the previous checkpoint: the root of its first {} entries is {}, the previous checkpoint says {}",
                            p.size,
                            b64(&self.tree.root()),
                            b64(&p.root)
                        ),
                    ));
                }
            }
        }
        Ok(due)
    }

    fn rules(&mut self, index: u64, entry: &Entry, digest: Option<BallotDigest>) {
        use ViolationKind as K;
        match (&mut self.states, entry) {
            (None, Entry::Manifest(m)) => {
                if m.roll_sha256 != self.roll.sha256() {
                    self.violations.push(Violation::at(
                        index,
                        K::RollHashMismatch,
                        format!(
                            "the manifest's roll SHA-256 {} is not the roll file's {}",
                            hex(&m.roll_sha256),
                            hex(&self.roll.sha256())
                        ),
                    ));
                }
                if m.log_verifier_key != self.verifier_key {
                    self.violations.push(Violation::at(
                        index,
                        K::ManifestKeyMismatch,
                        format!(
                            "the manifest names log key {:?}, not the verifier key audited with {:?}",
                            m.log_verifier_key, self.verifier_key
                        ),
                    ));
                }
                // The roll given, whatever the manifest's hash: eligibility is checked
                // against the published roll, and a mismatch is already recorded.
                let states = VoterStates::new(self.roll.clone(), m.election.clone());
                self.states = Some((states, m.clone()));
            }
            // Entry 0 was no manifest (recorded where found): no rules to check against.
            (None, Entry::Ballot(_)) => {}
            (Some(_), Entry::Manifest(_)) => {
                self.violations
                    .push(Violation::at(index, K::ExtraManifest, "a second manifest"))
            }
            (Some((states, _)), Entry::Ballot(lb)) => {
                let b = &lb.ballot;
                let say = |reason: &str| {
                    format!(
                        "voter {} {} seq {}: {reason}",
                        b.alg(),
                        b.voter_text(),
                        b.seq()
                    )
                };
                match b.alg() {
                    Alg::Ed25519 => self.ed25519 += 1,
                    Alg::P256 => self.p256 += 1,
                }
                // Looked up once: a probe of a table the size of the roll, a cache miss or
                // two on the one core the in-order path runs on.
                let voter = self.roll.lookup(b.key());
                let violation = if b.election() != states.election().id() {
                    Some((
                        K::WrongElection,
                        say(&format!(
                            "ballot for election {:?}, not {:?}",
                            b.election(),
                            states.election().id()
                        )),
                    ))
                } else if voter.is_none() {
                    Some((K::NotOnRoll, say("voter not on the roll")))
                } else if let Err(e) = states.election().check_window(lb.received_ms) {
                    Some((
                        K::OutsideWindow,
                        say(&format!("received at {} (unix ms): {e}", lb.received_ms)),
                    ))
                } else {
                    let last = voter.and_then(|v| states.last(v));
                    // The same rules the server applied on its way in and applies on
                    // restart, from nothing but the roll and the manifest.
                    match states.replay_digested(index, entry, digest) {
                        Ok(()) => {
                            if let (Some(tally), Some(v)) = (&mut self.tally, voter) {
                                if let Err(e) = tally.record(v, index, lb) {
                                    self.tally_error.get_or_insert(e.to_string());
                                    self.tally = None;
                                }
                            }
                            None
                        }
                        Err(crate::ballot::ReplayError::Rule { reason, .. }) => {
                            let kind = if reason.starts_with("repeats entry") {
                                K::DuplicateEntry
                            } else {
                                match (states.election().revote(), last) {
                                    (RevotePolicy::Last, Some(l)) if b.seq() < l.seq => K::StaleSeq,
                                    (RevotePolicy::Last, _) => K::Conflict,
                                    (RevotePolicy::None, _) => K::AlreadyVoted,
                                }
                            };
                            Some((kind, say(&reason)))
                        }
                        Err(other) => Some((K::EntryMalformed, other.to_string())),
                    }
                };
                if let Some((kind, message)) = violation {
                    self.violations.push(Violation::at(index, kind, message));
                }
            }
        }
    }

    /// Compares a fetched tile above level 0 with what the entries determine, recording a
    /// difference.
    pub fn check_tile(&mut self, tile: &DueTile, fetched: &[u8]) {
        if let Err(reason) = tile.check(fetched) {
            self.violations.push(Violation::at(
                tile.first_entry(),
                ViolationKind::TileMismatch,
                format!("{}: {reason}", tile.path()),
            ));
        }
    }

    /// The partial tiles above level 0 of the audited size, to fetch and check once every
    /// bundle is applied.
    pub fn final_tiles(&self) -> Vec<DueTile> {
        self.tree
            .partial_tiles()
            .into_iter()
            .filter(|t| t.level > 0)
            .collect()
    }

    /// Once every bundle is applied (or the audit stopped): the root against the
    /// checkpoint's, the tally file, and the report. `Err` only if the tally file could
    /// not be written.
    pub fn finish(mut self) -> Result<Report, AuditError> {
        let size = self.tree.size();
        let complete = size == self.checkpoint.size;
        let root = self.tree.root();
        if complete && root != self.checkpoint.root {
            self.violations.push(Violation::log(
                ViolationKind::RootMismatch,
                format!(
                    "root recomputed from the {size} entries is {}, the checkpoint says {}",
                    b64(&root),
                    b64(&self.checkpoint.root)
                ),
            ));
        }
        if let Some(e) = self.tally_error {
            return Err(AuditError::Tally(e));
        }
        let (distinct, election, revote, roll_voters) = match &self.states {
            Some((states, manifest)) => (
                // Bounded by the roll's size (at most 2^31 voters).
                (0..states.roll().len())
                    .filter(|&i| states.last(VoterId(i as u32)).is_some())
                    .count() as u64,
                manifest.election.id().to_owned(),
                manifest.election.revote().as_str().to_owned(),
                states.roll().len() as u64,
            ),
            None => (0, String::new(), String::new(), self.roll.len() as u64),
        };
        let tally = match self.tally.take() {
            Some(t) if complete => Some(
                t.finish(&self.roll)
                    .map_err(|e| AuditError::Tally(e.to_string()))?,
            ),
            _ => None,
        };
        let ballots = size.saturating_sub(1);
        Ok(Report {
            summary: Summary {
                origin: self.checkpoint.origin,
                election,
                revote,
                tree_size: self.checkpoint.size,
                root: b64(&self.checkpoint.root),
                checked: size,
                roll_voters,
                ballots,
                ed25519_ballots: self.ed25519,
                p256_ballots: self.p256,
                distinct_voters: distinct,
                counted_ballots: distinct,
                superseded_ballots: ballots.saturating_sub(distinct),
                extends_previous_size: self.previous.map(|p| p.size),
                violation_counts: self.violations.counts(),
                tally_sha256: tally.as_ref().map(|t| t.sha256.clone()),
            },
            violations: self.violations,
            complete,
            tally,
        })
    }
}

/// Parses a checkpoint note's body without verifying any signature: the audit goes on with
/// a checkpoint whose signature failed (recorded as a violation), so one run names every
/// other violation too.
pub fn parse_checkpoint_unverified(note: &[u8]) -> Result<CheckpointBody, String> {
    let text = std::str::from_utf8(note).map_err(|_| "not UTF-8".to_owned())?;
    let mut lines = text.split('\n');
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or("no origin line")?;
    let size = lines
        .next()
        .filter(|s| s == &"0" || (!s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())))
        .and_then(|s| s.parse().ok())
        .ok_or("bad size line")?;
    let root = lines
        .next()
        .and_then(|l| base64::Engine::decode(&B64, l).ok())
        .and_then(|r| <Digest32>::try_from(r).ok())
        .ok_or("bad root line")?;
    Ok(CheckpointBody {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// Why a checkpoint's signature failed, from its signature lines (`— <name> <base64(key
/// id ‖ signature)>`) and the verifier key text (`<name>+<hex key id>+<key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureFailure {
    /// No signature line names the key's name, and the origin is another log's: the
    /// verifier key given is another log's. The auditor's mistake, not the log's.
    KeyOfAnotherLog(String),
    /// The log's failure: a line of the key's name with another key id (signed by another
    /// key of that name), or of the same key whose signature does not verify (forged).
    Log(String),
}

/// Tells apart a verifier key of another log from a checkpoint the log's key did not sign.
pub fn diagnose_signature(note: &[u8], verifier_key: &str, origin: &str) -> SignatureFailure {
    let mut parts = verifier_key.trim().splitn(3, '+');
    let (name, id) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let text = String::from_utf8_lossy(note);
    // (name, key id in hex) of each signature line; at most a few dozen in a 64 KiB note.
    let signers: Vec<(String, String)> = text
        .split('\n')
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| {
            let (n, sig) = l.split_once(' ')?;
            let raw = base64::Engine::decode(&B64, sig).ok()?;
            Some((n.to_owned(), hex(raw.get(..4)?)))
        })
        .collect();
    let listed: Vec<String> = signers.iter().map(|(n, i)| format!("{n}+{i}")).collect();
    let listed = if listed.is_empty() {
        "no readable signature line".to_owned()
    } else {
        listed.join(", ")
    };
    if !signers.iter().any(|(n, _)| n == name) {
        if origin != name {
            return SignatureFailure::KeyOfAnotherLog(format!(
                "the verifier key names log {name:?}, but the checkpoint is of log {origin:?} (signed by {listed}): key name mismatch, the key given is another log's"
            ));
        }
        return SignatureFailure::Log(format!(
            "the checkpoint of {origin:?} carries no signature by its log's key {name}+{id} (signed by {listed})"
        ));
    }
    if !signers
        .iter()
        .any(|(n, i)| n == name && i.eq_ignore_ascii_case(id))
    {
        return SignatureFailure::Log(format!(
            "key hash mismatch: the checkpoint is signed by {listed}, not by the verifier key given ({name}+{id}); another key of that name signed it"
        ));
    }
    SignatureFailure::Log(format!(
        "the signature by {name}+{id} does not verify: the checkpoint was changed or the signature forged"
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::receipt::verify_checkpoint;
    use crate::ballot::{
        encode_entry, parse_submission, verify, Election, Limits, RevotePolicy, VoterSecret,
    };
    use crate::log::note::sign_checkpoint;
    use crate::log::tiles::push_bundle_entry;
    use crate::log::tree::HashStore;
    use crate::log::{Hash, LogKey};
    use tlog_tiles::record_hash;
    use ViolationKind as K;

    const E: &str = "audit-test";

    struct Fixture {
        voters: Vec<VoterSecret>,
        roll: Arc<Roll>,
        key: LogKey,
        election: Election,
    }

    /// `n` voters (every fifth one P-256), a log key, an election with `revote` and a
    /// window of [1000, 2000).
    fn fixture(n: u16, revote: RevotePolicy) -> Fixture {
        let voters: Vec<VoterSecret> = (0..n)
            .map(|i| {
                if i % 5 == 4 {
                    VoterSecret::generate_p256().unwrap()
                } else {
                    let mut seed = [7u8; 32];
                    seed[..2].copy_from_slice(&i.to_be_bytes());
                    VoterSecret::ed25519_from_seed(&seed)
                }
            })
            .collect();
        let text: String = voters.iter().map(|v| v.roll_line() + "\n").collect();
        let roll = Arc::new(Roll::parse(text.as_bytes(), 0).unwrap());
        let (_, key) = LogKey::generate("urna.test/audit").unwrap();
        let election = Election::new(E, revote, Some(1000), Some(2000)).unwrap();
        Fixture {
            voters,
            roll,
            key,
            election,
        }
    }

    /// The (index, kind) of every violation kept, sorted.
    fn found(r: &Report) -> Vec<(Option<u64>, ViolationKind)> {
        let mut v: Vec<_> = r.violations.kept().map(|v| (v.index, v.kind)).collect();
        v.sort();
        v
    }

    impl Fixture {
        fn manifest(&self) -> Vec<u8> {
            Manifest {
                election: self.election.clone(),
                roll_sha256: self.roll.sha256(),
                log_verifier_key: self.key.verifier_key().to_owned(),
            }
            .encode()
            .unwrap()
        }

        fn ballot(&self, v: &VoterSecret, seq: u64, received_ms: u64) -> Vec<u8> {
            let json = v.sign_submission(E, seq, format!("choice {seq}").as_bytes());
            let b = parse_submission(json.as_bytes(), &Limits::default()).unwrap();
            encode_entry(&verify(b).unwrap(), received_ms)
        }

        fn checkpoint(&self, size: u64, root: Hash) -> CheckpointBody {
            let note = sign_checkpoint(&self.key, size, root).unwrap().note;
            verify_checkpoint(&note, self.key.verifier_key()).unwrap()
        }

        /// Audits `entries` as the log publishes them (bundles, tiles and a checkpoint made
        /// with the log's own code), with the checkpoint's root replaced by `root` if given.
        fn audit(
            &self,
            entries: &[Vec<u8>],
            root: Option<Hash>,
            previous: Option<CheckpointBody>,
        ) -> Report {
            self.audit_served(entries, |_, _| {}, root, previous)
        }

        /// As [`Fixture::audit`], with the tiles and checkpoint made from `committed` while
        /// each bundle serves its entries as `tamper` leaves them (given the bundle's first
        /// index): a log that changed or dropped entries after signing.
        fn audit_served(
            &self,
            committed: &[Vec<u8>],
            tamper: impl Fn(u64, &mut Vec<Vec<u8>>),
            root: Option<Hash>,
            previous: Option<CheckpointBody>,
        ) -> Report {
            let mut store = HashStore::new();
            for e in committed {
                store.append(record_hash(e));
            }
            let size = committed.len() as u64;
            let cp = self.checkpoint(size, root.unwrap_or(store.root(size).unwrap()));
            let mut audit =
                LogAudit::new(self.roll.clone(), self.key.verifier_key(), cp, previous).unwrap();
            for (n, w) in bundles(size) {
                let first = n * TILE_WIDTH;
                let mut served =
                    committed[first as usize..(first + u64::from(w)) as usize].to_vec();
                tamper(first, &mut served);
                let mut bundle = Vec::new();
                for e in &served {
                    push_bundle_entry(&mut bundle, e);
                }
                let leaf_tile = store.tile(0, n, w).unwrap();
                let due = audit
                    .apply(prepare_bundle(n, w, Some(&bundle), Some(&leaf_tile)))
                    .unwrap();
                for t in due {
                    let w = t.hashes.len() as u32;
                    audit.check_tile(&t, &store.tile(t.level, t.index, w).unwrap());
                }
            }
            for t in audit.final_tiles() {
                let w = t.hashes.len() as u32;
                audit.check_tile(&t, &store.tile(t.level, t.index, w).unwrap());
            }
            audit.finish().unwrap()
        }
    }

    #[test]
    fn a_log_that_keeps_the_rules_passes_and_counts_the_last_ballot_per_voter() {
        let f = fixture(600, RevotePolicy::Last);
        let mut log = vec![f.manifest()];
        for v in &f.voters {
            log.push(f.ballot(v, 1, 1500));
        }
        for (v, seq) in [(0, 2), (4, 3), (0, 7)] {
            log.push(f.ballot(&f.voters[v], seq, 1999));
        }
        let r = f.audit(&log, None, None);
        assert!(r.ok(), "{}", r.violations.text());
        let s = r.summary;
        assert_eq!((s.tree_size, s.checked), (604, 604));
        assert_eq!(
            (s.ballots, s.distinct_voters, s.counted_ballots),
            (603, 600, 600)
        );
        assert_eq!(s.superseded_ballots, 3);
        assert_eq!((s.ed25519_ballots, s.p256_ballots), (482, 121));
        assert_eq!((s.election.as_str(), s.revote.as_str()), (E, "last"));
        assert_eq!(s.roll_voters, 600);
        assert!(s.violation_counts.is_empty());
    }

    #[test]
    fn every_rule_the_server_applies_is_checked_and_every_breach_named_in_one_run() {
        let f = fixture(4, RevotePolicy::Last);
        let (a, b, c) = (&f.voters[0], &f.voters[1], &f.voters[2]);
        let stranger = VoterSecret::ed25519_from_seed(&[99; 32]);
        let json = a.sign_submission(E, 2, b"another choice");
        let other_content = encode_entry(
            &verify(parse_submission(json.as_bytes(), &Limits::default()).unwrap()).unwrap(),
            1600,
        );
        let log = vec![
            f.manifest(),
            f.ballot(a, 2, 1500),
            f.ballot(a, 1, 1500), // 2: stale seq
            f.ballot(b, 1, 1500),
            f.ballot(b, 1, 1500),         // 4: the same ballot again
            f.ballot(&stranger, 1, 1500), // 5: not on the roll
            f.ballot(c, 1, 999),          // 6: before the window
            f.ballot(c, 1, 2000),         // 7: at the close
            f.manifest(),                 // 8: a second manifest
            f.ballot(c, 1, 1500),         // fine: the late ones did not count
            other_content,                // 10: seq 2 again, other content
        ];
        let r = f.audit(&log, None, None);
        assert!(!r.ok());
        assert_eq!(
            found(&r),
            [
                (Some(2), K::StaleSeq),
                (Some(4), K::DuplicateEntry),
                (Some(5), K::NotOnRoll),
                (Some(6), K::OutsideWindow),
                (Some(7), K::OutsideWindow),
                (Some(8), K::ExtraManifest),
                (Some(10), K::Conflict),
            ]
        );
        let text = r.violations.text();
        assert!(
            text.contains("entry 2: voter ed25519 ")
                && text.contains("seq 1 is below the last logged seq 2"),
            "{text}"
        );
        assert!(text.contains("outside_window: 2\n"), "{text}");
        assert!(text.contains("election not open until 1000"), "{text}");
        assert!(text.contains("election closed at 2000"), "{text}");
        // Only the ballots that kept every rule count: a's seq 2, b's first, c's in time.
        assert_eq!(r.summary.counted_ballots, 3);
    }

    #[test]
    fn revote_none_allows_one_ballot_a_voter() {
        let f = fixture(2, RevotePolicy::None);
        let (a, b) = (&f.voters[0], &f.voters[1]);
        let ok = vec![f.manifest(), f.ballot(a, 1, 1500), f.ballot(b, 4, 1500)];
        let r = f.audit(&ok, None, None);
        assert!(r.ok());
        let s = &r.summary;
        assert_eq!(
            (s.ballots, s.counted_ballots, s.superseded_ballots),
            (2, 2, 0)
        );
        assert_eq!(s.revote, "none");
        let mut twice = ok.clone();
        twice.push(f.ballot(a, 2, 1500));
        assert_eq!(
            found(&f.audit(&twice, None, None)),
            [(Some(3), K::AlreadyVoted)]
        );
    }

    #[test]
    fn a_manifest_for_another_roll_or_key_is_named_and_the_rest_still_checked() {
        let f = fixture(2, RevotePolicy::Last);
        let other = fixture(2, RevotePolicy::Last);
        let manifest = |roll_sha256, key: &LogKey| {
            Manifest {
                election: f.election.clone(),
                roll_sha256,
                log_verifier_key: key.verifier_key().to_owned(),
            }
            .encode()
            .unwrap()
        };
        let stranger = VoterSecret::ed25519_from_seed(&[99; 32]);
        let mut log = vec![
            manifest([0; 32], &f.key),
            f.ballot(&f.voters[0], 1, 1500),
            f.ballot(&stranger, 1, 1500),
        ];
        let r = f.audit(&log, None, None);
        assert_eq!(
            found(&r),
            [(Some(0), K::RollHashMismatch), (Some(2), K::NotOnRoll)]
        );
        assert!(r.violations.text().contains("the manifest's roll SHA-256 "));
        log[0] = manifest(f.roll.sha256(), &other.key);
        let r = f.audit(&log, None, None);
        assert_eq!(
            found(&r),
            [(Some(0), K::ManifestKeyMismatch), (Some(2), K::NotOnRoll)]
        );
        // No manifest at all: named, and the tree is still checked.
        let r = f.audit(&log[1..], None, None);
        assert_eq!(found(&r), [(Some(0), K::ManifestMissing)]);
    }

    #[test]
    fn a_root_the_entries_do_not_give_is_a_violation() {
        let f = fixture(2, RevotePolicy::Last);
        let log = vec![f.manifest(), f.ballot(&f.voters[0], 1, 1500)];
        let r = f.audit(&log, Some(Hash([1; 32])), None);
        assert_eq!(found(&r), [(None, K::RootMismatch)]);
    }

    #[test]
    fn the_tree_must_extend_the_previous_checkpoint() {
        let f = fixture(300, RevotePolicy::Last);
        let mut log = vec![f.manifest()];
        for v in &f.voters {
            log.push(f.ballot(v, 1, 1500));
        }
        let mut store = HashStore::new();
        for e in &log[..260] {
            store.append(record_hash(e));
        }
        let good = f.checkpoint(260, store.root(260).unwrap());
        let r = f.audit(&log, None, Some(good));
        assert!(r.ok());
        assert_eq!(r.summary.extends_previous_size, Some(260));
        let forked = f.checkpoint(260, store.root(259).unwrap());
        assert_eq!(
            found(&f.audit(&log, None, Some(forked))),
            [(None, K::NotExtended)]
        );
        let larger = f.checkpoint(302, store.root(260).unwrap());
        assert_eq!(
            found(&f.audit(&log, None, Some(larger))),
            [(None, K::LogShrank)]
        );
    }

    #[test]
    fn a_dropped_or_changed_entry_is_named_by_its_index_not_its_bundle() {
        let f = fixture(300, RevotePolicy::Last);
        let mut log = vec![f.manifest()];
        for v in &f.voters {
            log.push(f.ballot(v, 1, 1500));
        }
        // Entry 100 dropped from the served bundle (the tiles still commit to it).
        let drop = |gone: &'static [u64]| {
            move |first: u64, es: &mut Vec<Vec<u8>>| {
                for &g in gone.iter().rev() {
                    if (first..first + es.len() as u64).contains(&g) {
                        es.remove((g - first) as usize);
                    }
                }
            }
        };
        let r = f.audit_served(&log, drop(&[100]), None, None);
        assert_eq!(found(&r), [(Some(100), K::MissingEntry)]);
        assert!(r.complete);
        // Three dropped: two in one bundle, and the last entry of the log.
        let r = f.audit_served(&log, drop(&[7, 8, 280, 300]), None, None);
        assert_eq!(
            found(&r),
            [
                (Some(7), K::MissingEntry),
                (Some(8), K::MissingEntry),
                (Some(280), K::MissingEntry),
                (Some(300), K::MissingEntry)
            ]
        );
        // A receive time changed: not signed by the voter, but not the committed leaf.
        // The low byte of received_ms (bytes 1..9): 1500 becomes 1501, still in the window.
        let r = f.audit_served(
            &log,
            |first, es| {
                if first == 0 {
                    es[42][8] ^= 1;
                }
            },
            None,
            None,
        );
        assert_eq!(found(&r), [(Some(42), K::EntryHashMismatch)]);
    }

    #[test]
    fn malformed_bundles_are_named_by_path_and_index() {
        let f = fixture(2, RevotePolicy::Last);
        let mut bundle = Vec::new();
        push_bundle_entry(&mut bundle, &f.manifest());
        push_bundle_entry(&mut bundle, &f.ballot(&f.voters[0], 1, 1500));
        let p = prepare_bundle(0, 2, Some(&bundle), None);
        assert!(p.violations.is_empty() && p.leaves.is_some());
        let v = |b: &[u8], w| prepare_bundle(0, w, Some(b), None).violations;
        let short = v(&bundle, 3);
        assert!(short.is_empty(), "no tile: nothing to say which is missing");
        assert!(prepare_bundle(0, 3, Some(&bundle), None).leaves.is_none());
        let extra = v(&bundle, 1);
        assert_eq!(extra[0].kind, K::BundleMalformed);
        assert_eq!(
            extra[0].message,
            format!(
                "tile/entries/000.p/1: {} bytes after its 1 entries",
                bundle.len() - 2 - f.manifest().len()
            )
        );
        let cut = v(&bundle[..bundle.len() - 1], 2);
        assert_eq!((cut[0].index, cut[0].kind), (Some(1), K::BundleMalformed));
        assert!(cut[0].message.contains("entry 1 of the bundle: "));
        // A changed signature byte is the entry's failure, by global index.
        let mut bad = bundle.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let sig = v(&bad, 2);
        assert_eq!((sig[0].index, sig[0].kind), (Some(1), K::BadSignature));
        assert!(sig[0]
            .message
            .starts_with("the ed25519 signature of voter "));
    }

    #[test]
    fn every_bad_signature_in_a_batch_is_named_by_its_index() {
        // 20 voters, every fifth P-256: a bundle mixing both algorithms, as a log does.
        let f = fixture(20, RevotePolicy::Last);
        let mut good = vec![f.manifest()];
        good.extend(f.voters[..19].iter().map(|v| f.ballot(v, 1, 1500)));
        let forged = |mut e: Vec<u8>| {
            let n = e.len();
            e[n - 64] ^= 1; // R, the signature's first half
            e
        };
        let mut b = Vec::new();
        for e in &good {
            push_bundle_entry(&mut b, e);
        }
        assert!(prepare_bundle(0, 20, Some(&b), None).violations.is_empty());
        let mut log = good.clone();
        for i in [5, 8, 13] {
            log[i] = forged(log[i].clone());
        }
        log[11] = f.manifest();
        let mut b = Vec::new();
        for e in &log {
            push_bundle_entry(&mut b, e);
        }
        let p = prepare_bundle(0, 20, Some(&b), None);
        let got: Vec<_> = p.violations.iter().map(|v| (v.index, v.kind)).collect();
        assert_eq!(
            got,
            [
                (Some(5), K::BadSignature),
                (Some(8), K::BadSignature),
                (Some(11), K::ExtraManifest),
                (Some(13), K::BadSignature)
            ]
        );
        assert!(p.violations[0].message.starts_with("the p256 signature"));
        assert!(p.violations[1].message.starts_with("the ed25519 signature"));
        // Those entries are not handed to the rules.
        assert_eq!(p.entries.len(), 16);
    }

    #[test]
    fn a_bundle_prefix_is_its_first_entries() {
        let mut full = Vec::new();
        for e in [&b"ab"[..], b"", b"cde"] {
            push_bundle_entry(&mut full, e);
        }
        assert_eq!(bundle_prefix(&full, 1), [0, 2, b'a', b'b']);
        assert_eq!(bundle_prefix(&full, 2), [0, 2, b'a', b'b', 0, 0]);
        assert_eq!(bundle_prefix(&full, 3), &full[..]);
        assert_eq!(bundle_prefix(&full, 200), &full[..]);
        assert_eq!(bundle_prefix(&full[..5], 2), &full[..5]);
    }

    #[test]
    fn a_signature_failure_says_whether_the_key_is_another_logs() {
        let f = fixture(1, RevotePolicy::Last);
        let cp = sign_checkpoint(&f.key, 3, Hash([5; 32])).unwrap().note;
        let origin = f.key.name().to_owned();
        // Another log's key: another name.
        let (_, other_log) = LogKey::generate("urna.test/other").unwrap();
        assert!(matches!(
            diagnose_signature(&cp, other_log.verifier_key(), &origin),
            SignatureFailure::KeyOfAnotherLog(m) if m.contains("key name mismatch")
        ));
        // Another key of the log's own name.
        let (_, same_name) = LogKey::generate(&origin).unwrap();
        assert!(matches!(
            diagnose_signature(&cp, same_name.verifier_key(), &origin),
            SignatureFailure::Log(m) if m.starts_with("key hash mismatch")
        ));
        // The log's key, a signature byte changed.
        let text = String::from_utf8(cp.clone()).unwrap();
        let (body, sig) = text.rsplit_once(' ').unwrap();
        let mut raw = base64::Engine::decode(&B64, sig.trim_end()).unwrap();
        raw[10] ^= 1;
        let forged = format!("{body} {}\n", base64::Engine::encode(&B64, &raw));
        assert!(verify_checkpoint(forged.as_bytes(), f.key.verifier_key()).is_err());
        assert!(matches!(
            diagnose_signature(forged.as_bytes(), f.key.verifier_key(), &origin),
            SignatureFailure::Log(m) if m.contains("does not verify")
        ));
        let body = parse_checkpoint_unverified(forged.as_bytes()).unwrap();
        assert_eq!((body.size, body.root), (3, [5; 32]));
    }

    proptest::proptest! {
        #[test]
        fn any_bundle_bytes_are_refused_or_accepted_without_panic(
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            t in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            w in 1u32..=256,
        ) {
            let _ = prepare_bundle(0, w, Some(&b), None);
            let _ = prepare_bundle(3, w, Some(&b), Some(&t));
            proptest::prop_assert!(b.starts_with(bundle_prefix(&b, w)));
        }
    }
}
