//! Auditing a whole log from its public files: the checks, with no I/O (the fetching is in
//! [`super::fetch`], the order of work in [`super::run`]).
//!
//! Two steps per entry bundle:
//! - [`prepare_bundle`] — pure and independent of every other bundle, so bundles are
//!   prepared in parallel: split the bundle, decode each entry strictly and re-encode it
//!   (one byte string per entry), verify the bundle's ballot signatures as one batch with
//!   the server's own [`crate::ballot::verify_signatures`] (ZIP-215 / ring P-256: the batch
//!   accepts exactly what one-by-one checks would, and a failed batch is re-checked one by
//!   one to name the entry), hash the leaves.
//! - [`LogAudit::apply`] — in log order: the manifest against the roll and the key, the
//!   election and revote rules through the server's own state machine
//!   ([`VoterStates::replay`]) rebuilt from nothing but the roll file and the manifest, the
//!   tree and its tiles ([`super::tree`]), and the `--previous` root at its size.
//!
//! [`LogAudit::finish`] compares the rebuilt root with the checkpoint's and sums up.

use std::sync::Arc;

use serde::Serialize;

use super::proof::{leaf_hash, Digest32};
use super::receipt::{CheckpointBody, ReceiptError};
use super::tree::{DueTile, TreeBuilder};
use crate::ballot::{
    decode_entry, verify_signatures, Alg, Entry, LoggedBallot, Manifest, Roll, SignedItem, VoterId,
    VoterStates,
};
use crate::log::tiles::{Resource, TILE_WIDTH};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a log fails its audit. Each variant names what failed: the checkpoint, an entry by
/// its index, a tile or bundle by its path.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("checkpoint: {0}")]
    Checkpoint(ReceiptError),
    #[error("previous checkpoint: {0}")]
    Previous(ReceiptError),
    #[error(
        "previous checkpoint has size {previous}, more than the current {current}: the log shrank"
    )]
    PreviousLarger { previous: u64, current: u64 },
    #[error(
        "the tree does not extend the previous checkpoint: the root of its first {size} entries is {found}, the previous checkpoint says {expected}"
    )]
    NotExtended {
        size: u64,
        found: String,
        expected: String,
    },
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
    #[error("{path}: {reason}")]
    Bundle { path: String, reason: String },
    #[error("{path}: {reason}")]
    Tile { path: String, reason: String },
    #[error("manifest (entry 0): {0}")]
    Manifest(String),
    #[error("entry {index}: {reason}")]
    Entry { index: u64, reason: String },
    #[error("root recomputed from the {size} entries is {found}, the checkpoint says {expected}")]
    Root {
        size: u64,
        found: String,
        expected: String,
    },
}

impl AuditError {
    /// Whether the failure is the log's (a check failed, or it does not serve a file it
    /// must) rather than the auditor's own trouble reaching it (timeouts, refused
    /// connections), which proves nothing about the log.
    pub fn is_log_fault(&self) -> bool {
        !matches!(
            self,
            AuditError::Fetch { .. } | AuditError::Checkpoint(ReceiptError::Key(_))
        )
    }
}

/// The path of entry bundle `index` of width `width`, after `/log/`.
pub fn bundle_path(index: u64, width: u32) -> String {
    Resource::Entries { index, width }.path()
}

/// The first `width` entries of a bundle (all of it if it holds fewer: then
/// [`prepare_bundle`] says how many are missing).
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

/// One entry, decoded and checked on its own.
#[derive(Debug)]
pub struct PreparedEntry {
    pub leaf: Digest32,
    pub entry: Entry,
}

/// One entry bundle, prepared.
#[derive(Debug)]
pub struct PreparedBundle {
    pub index: u64,
    pub entries: Vec<PreparedEntry>,
    /// The level-0 tile beside the bundle, as fetched, to compare with the leaf hashes.
    pub leaf_tile: Vec<u8>,
}

/// Splits entry bundle `index` (which must hold `width` entries), decodes and checks every
/// entry on its own: strict decoding, canonical re-encoding, entry 0 a manifest and no other
/// entry one, every ballot's signature. `leaf_tile` is carried along for [`LogAudit::apply`].
///
/// The signatures are checked together after the entries are split and decoded (one batch
/// costs less than half of the one-by-one checks a signature), yet the error is the one a
/// check in log order would meet first: a bad signature before the first undecodable or
/// misframed entry is reported, not the later fault.
pub fn prepare_bundle(
    index: u64,
    width: u32,
    bundle: &[u8],
    leaf_tile: Vec<u8>,
) -> Result<PreparedBundle, AuditError> {
    let path = bundle_path(index, width);
    let mut rest = bundle;
    let mut entries = Vec::with_capacity(width as usize);
    let mut fault = None;
    // Bounded: each turn consumes at least the 2-byte length.
    while !rest.is_empty() {
        let bad = |reason: String| AuditError::Bundle {
            path: path.clone(),
            reason,
        };
        let n = entries.len() as u64;
        if n == u64::from(width) {
            fault = Some(bad(format!(
                "{} bytes after its {width} entries",
                rest.len()
            )));
            break;
        }
        let [a, b, tail @ ..] = rest else {
            fault = Some(bad(format!("entry {n} of the bundle: truncated length")));
            break;
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            fault = Some(bad(format!(
                "entry {n} of the bundle: {len} bytes announced, {} left",
                tail.len()
            )));
            break;
        }
        let (bytes, more) = tail.split_at(len);
        rest = more;
        match decode_checked(index * TILE_WIDTH + n, bytes) {
            Ok(entry) => entries.push(PreparedEntry {
                leaf: leaf_hash(bytes),
                entry,
            }),
            Err(e) => {
                fault = Some(e);
                break;
            }
        }
    }
    // Every entry before the first fault, whose signatures a check in log order would
    // have met first.
    let ballots: Vec<(u64, &LoggedBallot, Vec<u8>)> = entries
        .iter()
        .enumerate()
        .filter_map(|(n, e)| match &e.entry {
            Entry::Ballot(lb) => Some((n as u64, lb, lb.ballot.signed_message())),
            Entry::Manifest(_) => None,
        })
        .collect();
    let items: Vec<SignedItem<'_>> = ballots
        .iter()
        .map(|(_, lb, m)| (&lb.ballot.key, m.as_slice(), &lb.ballot.sig))
        .collect();
    let verdicts = verify_signatures(&items);
    if let Some(((n, lb, _), _)) = ballots.iter().zip(&verdicts).find(|(_, v)| v.is_err()) {
        return Err(signature_fault(index * TILE_WIDTH + n, lb));
    }
    if let Some(fault) = fault {
        return Err(fault);
    }
    if entries.len() as u64 != u64::from(width) {
        return Err(AuditError::Bundle {
            path,
            reason: format!("holds {} entries, expected {width}", entries.len()),
        });
    }
    Ok(PreparedBundle {
        index,
        entries,
        leaf_tile,
    })
}

/// Entry `index` on its own, but for its signature ([`prepare_bundle`] checks those a bundle
/// at a time): decodes, is the one encoding of what it decodes to, and is the right kind for
/// its place.
fn decode_checked(index: u64, bytes: &[u8]) -> Result<Entry, AuditError> {
    let bad = |reason: String| AuditError::Entry { index, reason };
    let entry = decode_entry(bytes).map_err(|e| bad(format!("does not decode: {e}")))?;
    match (&entry, index) {
        (Entry::Manifest(m), 0) => {
            let again = m.encode().map_err(|e| bad(format!("manifest: {e}")))?;
            if again != bytes {
                return Err(AuditError::Manifest("not in its canonical encoding".into()));
            }
        }
        (Entry::Ballot(_), 0) => return Err(AuditError::Manifest("entry 0 is a ballot".into())),
        (Entry::Manifest(_), _) => return Err(bad("a second manifest".into())),
        (Entry::Ballot(lb), _) => {
            if lb.encode() != bytes {
                return Err(bad("not in its canonical encoding".into()));
            }
        }
    }
    Ok(entry)
}

fn signature_fault(index: u64, lb: &LoggedBallot) -> AuditError {
    AuditError::Entry {
        index,
        reason: format!(
            "the {} signature of voter {} (seq {}) does not verify",
            lb.ballot.alg(),
            lb.ballot.voter_text(),
            lb.ballot.seq()
        ),
    }
}

/// What an audit that passed found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub origin: String,
    pub election: String,
    /// `last` or `none`.
    pub revote: String,
    pub tree_size: u64,
    /// Base64, as in the checkpoint.
    pub root: String,
    /// Voters on the roll.
    pub roll_voters: u64,
    /// Ballot entries (every version, revotes included).
    pub ballots: u64,
    pub ed25519_ballots: u64,
    pub p256_ballots: u64,
    /// Voters with at least one ballot logged.
    pub distinct_voters: u64,
    /// Ballots that count under the policy: the last per voter (`last`), the only one
    /// (`none`).
    pub counted_ballots: u64,
    /// Ballots replaced by a later one of the same voter.
    pub superseded_ballots: u64,
    /// Size of the `--previous` checkpoint this tree was shown to extend, if one was given.
    pub extends_previous_size: Option<u64>,
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
        Ok(())
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
    ed25519: u64,
    p256: u64,
}

fn b64(h: &Digest32) -> String {
    base64::Engine::encode(&B64, h)
}

impl LogAudit {
    /// An audit of the tree `checkpoint` (already verified under `verifier_key`), against
    /// `roll`, optionally proving it extends `previous` (verified under the same key).
    pub fn new(
        roll: Arc<Roll>,
        verifier_key: &str,
        checkpoint: CheckpointBody,
        previous: Option<CheckpointBody>,
    ) -> Result<LogAudit, AuditError> {
        if checkpoint.size == 0 {
            return Err(AuditError::Empty);
        }
        if let Some(p) = &previous {
            if p.size > checkpoint.size {
                return Err(AuditError::PreviousLarger {
                    previous: p.size,
                    current: checkpoint.size,
                });
            }
            if p.size == 0 && p.root != TreeBuilder::new().root() {
                return Err(AuditError::NotExtended {
                    size: 0,
                    found: b64(&TreeBuilder::new().root()),
                    expected: b64(&p.root),
                });
            }
        }
        Ok(LogAudit {
            roll,
            verifier_key: verifier_key.trim().to_owned(),
            checkpoint,
            previous,
            tree: TreeBuilder::new(),
            states: None,
            ed25519: 0,
            p256: 0,
        })
    }

    /// The tree size being audited.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// Applies the next bundle, in order. Returns the full hash tiles above level 0 it
    /// completes, for the caller to fetch and [`LogAudit::check_tile`]; the level-0 tile is
    /// checked here against the one carried in the bundle.
    pub fn apply(&mut self, bundle: PreparedBundle) -> Result<Vec<DueTile>, AuditError> {
        if bundle.index * TILE_WIDTH != self.tree.size() {
            return Err(AuditError::Bundle {
                path: bundle_path(bundle.index, bundle.entries.len() as u32),
                reason: format!("applied out of order at tree size {}", self.tree.size()),
            });
        }
        let mut due = Vec::new();
        let mut leaf_tile = None;
        for e in &bundle.entries {
            let index = self.tree.size();
            self.rules(index, &e.entry)?;
            for t in self.tree.push(e.leaf) {
                if t.level == 0 {
                    leaf_tile = Some(t);
                } else {
                    due.push(t);
                }
            }
            if let Some(p) = &self.previous {
                if p.size == self.tree.size() && self.tree.root() != p.root {
                    return Err(AuditError::NotExtended {
                        size: p.size,
                        found: b64(&self.tree.root()),
                        expected: b64(&p.root),
                    });
                }
            }
        }
        // A partial bundle is the last one: its level-0 tile is the tree's partial one.
        let leaf_tile = leaf_tile.or_else(|| {
            self.tree
                .partial_tiles()
                .into_iter()
                .find(|t| t.level == 0 && t.index == bundle.index)
        });
        if let Some(t) = leaf_tile {
            check_tile(&t, &bundle.leaf_tile)?;
        }
        Ok(due)
    }

    fn rules(&mut self, index: u64, entry: &Entry) -> Result<(), AuditError> {
        let bad = |reason: String| AuditError::Entry { index, reason };
        match (&mut self.states, entry) {
            (None, Entry::Manifest(m)) => {
                if m.roll_sha256 != self.roll.sha256() {
                    return Err(AuditError::Manifest(format!(
                        "roll SHA-256 {} is not the roll file's {}",
                        hex(&m.roll_sha256),
                        hex(&self.roll.sha256())
                    )));
                }
                if m.log_verifier_key != self.verifier_key {
                    return Err(AuditError::Manifest(format!(
                        "names log key {:?}, not the verifier key audited with {:?}",
                        m.log_verifier_key, self.verifier_key
                    )));
                }
                let mut states = VoterStates::new(self.roll.clone(), m.election.clone());
                states
                    .replay(index, entry)
                    .map_err(|e| AuditError::Manifest(e.to_string()))?;
                self.states = Some((states, m.clone()));
                Ok(())
            }
            (None, _) => Err(AuditError::Manifest("entry 0 is not a manifest".into())),
            (Some((states, _)), Entry::Ballot(lb)) => {
                // The same rules the server applied on its way in and applies on restart,
                // from nothing but the roll and the manifest; `Rule` errors already name the
                // index.
                states.replay(index, entry).map_err(|e| match e {
                    crate::ballot::ReplayError::Rule { reason, .. } => bad(format!(
                        "voter {} {} seq {}: {reason}",
                        lb.ballot.alg(),
                        lb.ballot.voter_text(),
                        lb.ballot.seq()
                    )),
                    other => bad(other.to_string()),
                })?;
                match lb.ballot.alg() {
                    Alg::Ed25519 => self.ed25519 += 1,
                    Alg::P256 => self.p256 += 1,
                }
                Ok(())
            }
            (Some(_), Entry::Manifest(_)) => Err(bad("a second manifest".into())),
        }
    }

    /// Compares a fetched tile above level 0 with what the entries determine.
    pub fn check_tile(&self, tile: &DueTile, fetched: &[u8]) -> Result<(), AuditError> {
        check_tile(tile, fetched)
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

    /// Once every bundle is applied: the root against the checkpoint's, and the summary.
    pub fn finish(self) -> Result<Summary, AuditError> {
        let size = self.tree.size();
        if size != self.checkpoint.size {
            return Err(AuditError::Root {
                size,
                found: format!("incomplete ({size} of {} entries)", self.checkpoint.size),
                expected: b64(&self.checkpoint.root),
            });
        }
        let root = self.tree.root();
        if root != self.checkpoint.root {
            return Err(AuditError::Root {
                size,
                found: b64(&root),
                expected: b64(&self.checkpoint.root),
            });
        }
        let (states, manifest) = self.states.ok_or(AuditError::Empty)?;
        // Bounded by the roll's size (at most 2^31 voters).
        let distinct = (0..states.roll().len())
            .filter(|&i| states.last(VoterId(i as u32)).is_some())
            .count() as u64;
        let ballots = size - 1;
        Ok(Summary {
            origin: self.checkpoint.origin,
            election: manifest.election.id().to_owned(),
            revote: manifest.election.revote().as_str().to_owned(),
            tree_size: size,
            root: b64(&root),
            roll_voters: states.roll().len() as u64,
            ballots,
            ed25519_ballots: self.ed25519,
            p256_ballots: self.p256,
            distinct_voters: distinct,
            counted_ballots: distinct,
            superseded_ballots: ballots - distinct,
            extends_previous_size: self.previous.map(|p| p.size),
        })
    }
}

fn check_tile(tile: &DueTile, fetched: &[u8]) -> Result<(), AuditError> {
    tile.check(fetched).map_err(|reason| AuditError::Tile {
        path: tile.path(),
        reason,
    })
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
        ) -> Result<Summary, AuditError> {
            let mut store = HashStore::new();
            for e in entries {
                store.append(record_hash(e));
            }
            let size = entries.len() as u64;
            let cp = self.checkpoint(size, root.unwrap_or(store.root(size).unwrap()));
            let mut audit =
                LogAudit::new(self.roll.clone(), self.key.verifier_key(), cp, previous)?;
            for (n, w) in bundles(size) {
                let mut bundle = Vec::new();
                let first = (n * TILE_WIDTH) as usize;
                for e in &entries[first..first + w as usize] {
                    push_bundle_entry(&mut bundle, e);
                }
                let leaf_tile = store.tile(0, n, w).unwrap();
                for t in audit.apply(prepare_bundle(n, w, &bundle, leaf_tile)?)? {
                    let w = t.hashes.len() as u32;
                    audit.check_tile(&t, &store.tile(t.level, t.index, w).unwrap())?;
                }
            }
            for t in audit.final_tiles() {
                let w = t.hashes.len() as u32;
                audit.check_tile(&t, &store.tile(t.level, t.index, w).unwrap())?;
            }
            audit.finish()
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
        let s = f.audit(&log, None, None).unwrap();
        assert_eq!(s.tree_size, 604);
        assert_eq!(
            (s.ballots, s.distinct_voters, s.counted_ballots),
            (603, 600, 600)
        );
        assert_eq!(s.superseded_ballots, 3);
        assert_eq!((s.ed25519_ballots, s.p256_ballots), (482, 121));
        assert_eq!((s.election.as_str(), s.revote.as_str()), (E, "last"));
        assert_eq!(s.roll_voters, 600);
    }

    #[test]
    fn every_rule_the_server_applies_is_checked_and_names_the_entry() {
        let f = fixture(3, RevotePolicy::Last);
        let (a, b) = (&f.voters[0], &f.voters[1]);
        let stranger = VoterSecret::ed25519_from_seed(&[99; 32]);
        let m = f.manifest();
        let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
            (
                vec![m.clone(), f.ballot(a, 2, 1500), f.ballot(a, 1, 1500)],
                "entry 2: voter ed25519",
            ),
            (
                vec![m.clone(), f.ballot(b, 1, 1500), f.ballot(b, 1, 1500)],
                "repeats entry 1",
            ),
            (
                vec![m.clone(), f.ballot(&stranger, 1, 1500)],
                "not on the roll",
            ),
            (
                vec![m.clone(), f.ballot(a, 1, 999)],
                "election not open until 1000",
            ),
            (
                vec![m.clone(), f.ballot(a, 1, 2000)],
                "election closed at 2000",
            ),
            (
                vec![f.ballot(a, 1, 1500)],
                "manifest (entry 0): entry 0 is a ballot",
            ),
            (vec![m.clone(), m.clone()], "entry 1: a second manifest"),
        ];
        for (log, needle) in cases {
            let err = f.audit(&log, None, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
        // The stale seq message says what the server would have said.
        let log = vec![m.clone(), f.ballot(a, 2, 1500), f.ballot(a, 1, 1500)];
        let err = f.audit(&log, None, None).unwrap_err().to_string();
        assert!(
            err.contains("seq 1 is below the last logged seq 2"),
            "{err}"
        );
    }

    #[test]
    fn revote_none_allows_one_ballot_a_voter() {
        let f = fixture(2, RevotePolicy::None);
        let (a, b) = (&f.voters[0], &f.voters[1]);
        let ok = vec![f.manifest(), f.ballot(a, 1, 1500), f.ballot(b, 4, 1500)];
        let s = f.audit(&ok, None, None).unwrap();
        assert_eq!(
            (s.ballots, s.counted_ballots, s.superseded_ballots),
            (2, 2, 0)
        );
        assert_eq!(s.revote, "none");
        let mut twice = ok.clone();
        twice.push(f.ballot(a, 2, 1500));
        let err = f.audit(&twice, None, None).unwrap_err().to_string();
        assert!(err.starts_with("entry 3: "), "{err}");
    }

    #[test]
    fn a_manifest_for_another_roll_or_key_fails() {
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
        let mut log = vec![manifest([0; 32], &f.key), f.ballot(&f.voters[0], 1, 1500)];
        let err = f.audit(&log, None, None).unwrap_err().to_string();
        assert!(
            err.starts_with("manifest (entry 0): roll SHA-256 "),
            "{err}"
        );
        log[0] = manifest(f.roll.sha256(), &other.key);
        let err = f.audit(&log, None, None).unwrap_err().to_string();
        assert!(err.contains("names log key"), "{err}");
    }

    #[test]
    fn a_root_the_entries_do_not_give_fails() {
        let f = fixture(2, RevotePolicy::Last);
        let log = vec![f.manifest(), f.ballot(&f.voters[0], 1, 1500)];
        let err = f.audit(&log, Some(Hash([1; 32])), None).unwrap_err();
        assert!(matches!(err, AuditError::Root { size: 2, .. }), "{err}");
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
        let s = f.audit(&log, None, Some(good)).unwrap();
        assert_eq!(s.extends_previous_size, Some(260));
        let forked = f.checkpoint(260, store.root(259).unwrap());
        let err = f.audit(&log, None, Some(forked)).unwrap_err();
        assert!(
            matches!(err, AuditError::NotExtended { size: 260, .. }),
            "{err}"
        );
        let larger = f.checkpoint(302, store.root(260).unwrap());
        let err = f.audit(&log, None, Some(larger)).unwrap_err();
        assert!(matches!(err, AuditError::PreviousLarger { .. }), "{err}");
    }

    #[test]
    fn malformed_bundles_are_named_by_path() {
        let f = fixture(2, RevotePolicy::Last);
        let mut bundle = Vec::new();
        push_bundle_entry(&mut bundle, &f.manifest());
        push_bundle_entry(&mut bundle, &f.ballot(&f.voters[0], 1, 1500));
        assert!(prepare_bundle(0, 2, &bundle, Vec::new()).is_ok());
        let err = |b: &[u8], w| prepare_bundle(0, w, b, Vec::new()).unwrap_err().to_string();
        assert_eq!(
            err(&bundle, 3),
            "tile/entries/000.p/3: holds 2 entries, expected 3"
        );
        assert_eq!(
            err(&bundle, 1),
            format!(
                "tile/entries/000.p/1: {} bytes after its 1 entries",
                bundle.len() - 2 - f.manifest().len()
            )
        );
        let short = &bundle[..bundle.len() - 1];
        assert!(
            err(short, 2).contains("entry 1 of the bundle: "),
            "{}",
            err(short, 2)
        );
        let mut one_more = bundle.clone();
        one_more.push(0);
        assert!(err(&one_more, 3).contains("entry 2 of the bundle: truncated length"));
        // A changed signature byte is the entry's failure, by global index.
        let mut bad = bundle.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(err(&bad, 2).starts_with("entry 1: the ed25519 signature of voter "));
    }

    #[test]
    fn a_bad_signature_is_named_in_log_order_though_the_bundle_is_checked_as_one_batch() {
        // 20 voters, every fifth P-256: a bundle mixing both algorithms, as a log does.
        let f = fixture(20, RevotePolicy::Last);
        let mut good = vec![f.manifest()];
        good.extend(f.voters[..19].iter().map(|v| f.ballot(v, 1, 1500)));
        let forged = |mut e: Vec<u8>| {
            let n = e.len();
            e[n - 64] ^= 1; // R, the signature's first half
            e
        };
        let bundle_of = |entries: &[Vec<u8>]| {
            let mut b = Vec::new();
            for e in entries {
                push_bundle_entry(&mut b, e);
            }
            b
        };
        let err = |entries: &[Vec<u8>]| {
            prepare_bundle(0, 20, &bundle_of(entries), Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert!(prepare_bundle(0, 20, &bundle_of(&good), Vec::new()).is_ok());

        // Entry 5 is voter 4's, a P-256 ballot; 8 and 13 are Ed25519. The first in log
        // order is named, whichever algorithm and however many the batch held.
        let mut log = good.clone();
        log[13] = forged(log[13].clone());
        assert!(
            err(&log).starts_with("entry 13: the ed25519 signature"),
            "{}",
            err(&log)
        );
        log[8] = forged(log[8].clone());
        assert!(
            err(&log).starts_with("entry 8: the ed25519 signature"),
            "{}",
            err(&log)
        );
        log[5] = forged(log[5].clone());
        assert!(
            err(&log).starts_with("entry 5: the p256 signature"),
            "{}",
            err(&log)
        );

        // A bad signature before a later fault is the one reported, and after an earlier
        // fault it is not: as if every entry were checked alone, in order.
        let mut log = good.clone();
        log[8] = forged(log[8].clone());
        log[11] = f.manifest();
        assert!(
            err(&log).starts_with("entry 8: the ed25519"),
            "{}",
            err(&log)
        );
        log[3] = f.manifest();
        assert_eq!(err(&log), "entry 3: a second manifest");
        let mut log = good.clone();
        log[8] = forged(log[8].clone());
        let mut cut = bundle_of(&log);
        cut.truncate(cut.len() - 10);
        let e = prepare_bundle(0, 20, &cut, Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("entry 8: the ed25519"), "{e}");
        log[8] = good[8].clone();
        let e = prepare_bundle(0, 20, &bundle_of(&log)[..cut.len()], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 19 of the bundle: "), "{e}");
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

    proptest::proptest! {
        #[test]
        fn any_bundle_bytes_are_refused_or_accepted_without_panic(
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            w in 1u32..=256,
        ) {
            let _ = prepare_bundle(0, w, &b, Vec::new());
            let _ = prepare_bundle(3, w, &b, Vec::new());
            proptest::prop_assert!(b.starts_with(bundle_prefix(&b, w)));
        }
    }
}
