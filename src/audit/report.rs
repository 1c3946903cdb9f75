//! What an audit found: every violation, each with the entry it concerns, a stable kind and
//! a message, kept in bounded memory (all counted, the first N of each kind kept in full).
//! Spec code: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a violation is, as a stable snake_case code (`--json`'s `kind`, the text output's
/// group heading). Listed in docs/AUDITING.md; never renamed, only added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// The checkpoint carries a signature line of the log's key that does not verify, or
    /// is signed by another key of the same name.
    CheckpointSignature,
    /// The checkpoint's body is not a tlog-checkpoint (origin, size, root).
    CheckpointMalformed,
    /// A `--previous` checkpoint's tree is not a prefix of this one.
    NotExtended,
    /// A `--previous` checkpoint is larger than this one: the log shrank.
    LogShrank,
    /// Entry 0 is not the manifest.
    ManifestMissing,
    /// The manifest's roll SHA-256 is not the roll file's.
    RollHashMismatch,
    /// The manifest names another log key than the one audited with.
    ManifestKeyMismatch,
    /// An entry after 0 is a manifest.
    ExtraManifest,
    /// An entry does not decode, or is not in its one canonical encoding.
    EntryMalformed,
    /// A ballot's signature does not verify.
    BadSignature,
    /// A ballot names another election.
    WrongElection,
    /// A ballot's voter key is not on the roll.
    NotOnRoll,
    /// A ballot received before `opens_at` or at/after `closes_at`.
    OutsideWindow,
    /// Revote `last`: a seq below the voter's last logged one (a replayed old ballot).
    StaleSeq,
    /// Revote `last`: the same seq as the voter's last ballot, with other content.
    Conflict,
    /// Revote `none`: a second ballot of one voter.
    AlreadyVoted,
    /// The exact ballot already logged at an earlier index, logged again.
    DuplicateEntry,
    /// An entry's leaf hash is not the one the level-0 tile commits to at its index.
    EntryHashMismatch,
    /// An index the level-0 tile commits to has no entry in the bundle.
    MissingEntry,
    /// An entry bundle's framing is wrong (truncated, extra bytes, too many entries).
    BundleMalformed,
    /// A hash tile differs from the one the entries (or the tile below) give.
    TileMismatch,
    /// A file the log must serve is not served.
    NotServed,
    /// The root recomputed from the log's hashes is not the checkpoint's.
    RootMismatch,
}

impl ViolationKind {
    /// The stable code, as serialized.
    pub fn code(self) -> &'static str {
        use ViolationKind::*;
        match self {
            CheckpointSignature => "checkpoint_signature",
            CheckpointMalformed => "checkpoint_malformed",
            NotExtended => "not_extended",
            LogShrank => "log_shrank",
            ManifestMissing => "manifest_missing",
            RollHashMismatch => "roll_hash_mismatch",
            ManifestKeyMismatch => "manifest_key_mismatch",
            ExtraManifest => "extra_manifest",
            EntryMalformed => "entry_malformed",
            BadSignature => "bad_signature",
            WrongElection => "wrong_election",
            NotOnRoll => "not_on_roll",
            OutsideWindow => "outside_window",
            StaleSeq => "stale_seq",
            Conflict => "conflict",
            AlreadyVoted => "already_voted",
            DuplicateEntry => "duplicate_entry",
            EntryHashMismatch => "entry_hash_mismatch",
            MissingEntry => "missing_entry",
            BundleMalformed => "bundle_malformed",
            TileMismatch => "tile_mismatch",
            NotServed => "not_served",
            RootMismatch => "root_mismatch",
        }
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The log index it concerns (for a tile, the first entry under the differing hash);
    /// `None` for the checkpoint and the root.
    pub index: Option<u64>,
    pub kind: ViolationKind,
    pub message: String,
}

impl Violation {
    pub fn at(index: u64, kind: ViolationKind, message: impl Into<String>) -> Violation {
        Violation {
            index: Some(index),
            kind,
            message: message.into(),
        }
    }

    pub fn log(kind: ViolationKind, message: impl Into<String>) -> Violation {
        Violation {
            index: None,
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "entry {i}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Default for [`Violations::new`]'s `keep_per_kind` (`urna audit --max-per-kind`).
pub const DEFAULT_KEEP_PER_KIND: usize = 20;

/// Every violation counted; the first `keep_per_kind` of each kind kept in full. A forged
/// log can hold a violation in every one of millions of entries: keeping them all would let
/// the log under audit choose the auditor's memory. At most 23 kinds × `keep_per_kind`.
#[derive(Debug, Clone)]
pub struct Violations {
    keep_per_kind: usize,
    by_kind: BTreeMap<ViolationKind, (u64, Vec<Violation>)>,
}

impl Violations {
    pub fn new(keep_per_kind: usize) -> Violations {
        Violations {
            keep_per_kind,
            by_kind: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, v: Violation) {
        let (count, kept) = self.by_kind.entry(v.kind).or_default();
        *count += 1;
        if kept.len() < self.keep_per_kind {
            kept.push(v);
        }
    }

    /// All violations, counted (kept or not).
    pub fn total(&self) -> u64 {
        self.by_kind.values().map(|(n, _)| n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// How many of each kind, in kind order.
    pub fn counts(&self) -> BTreeMap<ViolationKind, u64> {
        self.by_kind.iter().map(|(k, (n, _))| (*k, *n)).collect()
    }

    /// Those kept, by kind, then in the order found (log order within a kind).
    pub fn kept(&self) -> impl Iterator<Item = &Violation> {
        self.by_kind.values().flat_map(|(_, v)| v)
    }

    /// Those counted but not kept.
    pub fn omitted(&self) -> u64 {
        self.by_kind.values().map(|(n, v)| n - v.len() as u64).sum()
    }

    /// The text report: one heading a kind with its count, then the kept ones in full.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (kind, (n, kept)) in &self.by_kind {
            let _ = writeln!(out, "{kind}: {n}");
            for v in kept {
                let _ = writeln!(out, "  {v}");
            }
            if *n > kept.len() as u64 {
                let _ = writeln!(out, "  … and {} more", n - kept.len() as u64);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_counted_and_only_the_first_n_of_a_kind_kept() {
        let mut v = Violations::new(2);
        for i in 0..1000 {
            v.push(Violation::at(i, ViolationKind::OutsideWindow, "late"));
        }
        v.push(Violation::at(7, ViolationKind::BadSignature, "forged"));
        v.push(Violation::log(ViolationKind::RootMismatch, "root differs"));
        assert_eq!(v.total(), 1002);
        assert_eq!(v.omitted(), 998);
        assert_eq!(v.kept().count(), 4);
        assert_eq!(v.counts()[&ViolationKind::OutsideWindow], 1000);
        let text = v.text();
        assert!(
            text.contains(
                "outside_window: 1000\n  entry 0: late\n  entry 1: late\n  … and 998 more\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("bad_signature: 1\n  entry 7: forged\n"),
            "{text}"
        );
        assert!(
            text.contains("root_mismatch: 1\n  root differs\n"),
            "{text}"
        );
        let json = serde_json::to_value(v.kept().next().unwrap()).unwrap();
        assert_eq!(json["kind"], "bad_signature");
        assert_eq!(json["index"], 7);
    }

    #[test]
    fn codes_are_the_serialized_names() {
        use ViolationKind::*;
        for k in [
            CheckpointSignature,
            NotOnRoll,
            StaleSeq,
            OutsideWindow,
            MissingEntry,
            EntryHashMismatch,
            RollHashMismatch,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.code());
        }
    }
}
