//! The closing audit: after the run, what the log holds is checked against what the run
//! saw, with the server crate's own auditor (`urna::audit`, what `urna audit` runs).
//!
//! - Before the clock, [`Opening::fetch`] reads and verifies the target's checkpoint.
//! - After the run, [`Opening::close`] audits the whole log at its new checkpoint: every
//!   entry decoded and its signature verified, the election's rules against the roll (a
//!   listed key, rising seqs, no duplicate: a hostile ballot — bad signature, unlisted key,
//!   stale seq, replay — that was logged is a violation), every tile and the root, and that
//!   the new tree extends the opening one (consistency proof). Then every receipt a voter
//!   got is looked up: the leaf at its index in the new tree (level-0 tiles, authenticated
//!   against the new root) must be the hash of exactly the entry the voter was given.
//!
//! Bounded: a log larger than `audit_max_entries` is not walked, and the audit fails
//! (it was not done); at most [`MAX_KEPT`] examples of each finding are kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use urna::audit::receipt::{verify_checkpoint, CheckpointBody};
use urna::audit::tiled::{leaf_hashes, MAX_LEAVES_PER_READ};
use urna::audit::{AuditRequest, FetchLimits, HttpsSource, Source};
use urna::ballot::Roll;

use crate::receipts::Logged;

/// Examples kept of each kind of finding (all are counted).
pub const MAX_KEPT: usize = 20;
/// Largest checkpoint read.
const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// The log as the run found it, before the clock.
pub struct Opening {
    source: Arc<Source>,
    verifier_key: String,
    /// The checkpoint note, verbatim (the audit's `previous`).
    note: Vec<u8>,
    pub checkpoint: CheckpointBody,
}

/// What the closing audit found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditReport {
    pub passed: bool,
    /// Each reason it did not pass, in words.
    pub failures: Vec<String>,
    /// Tree size at the start and at the end of the run.
    pub start_size: u64,
    pub end_size: u64,
    /// Entries the audit checked.
    pub entries_checked: u64,
    /// The end tree was proved to extend the start tree.
    pub consistent: bool,
    /// Log rule violations, by kind (`bad_signature`, `not_on_roll`, `stale_seq`,
    /// `duplicate_entry`, `not_extended`, ...), and some examples.
    pub violations: BTreeMap<String, u64>,
    pub violation_examples: Vec<String>,
    /// Receipts looked up in the end tree, and those whose entry is not there as given.
    pub receipts_checked: u64,
    pub receipts_missing: u64,
    pub receipt_examples: Vec<String>,
    /// Receipts the voters got that the run could not keep for the audit (over its bound).
    pub receipts_not_kept: u64,
}

impl Opening {
    /// Reads and verifies the target's checkpoint under `verifier_key`.
    pub async fn fetch(
        addr: std::net::SocketAddr,
        ca: &Path,
        verifier_key: &str,
    ) -> Result<Opening, String> {
        let url = format!("https://{addr}/");
        let source = HttpsSource::new(&url, Some(ca), FetchLimits::default())
            .map_err(|e| format!("audit source {url}: {e}"))?;
        let source = Arc::new(Source::Https(Box::new(source)));
        Opening::from_source(source, verifier_key).await
    }

    /// As [`Opening::fetch`], from any source (a mirror directory in tests).
    pub async fn from_source(source: Arc<Source>, verifier_key: &str) -> Result<Opening, String> {
        let note = source
            .get("checkpoint", MAX_CHECKPOINT_BYTES)
            .await
            .map_err(|e| format!("checkpoint at start: {e}"))?;
        let checkpoint = verify_checkpoint(&note, verifier_key)
            .map_err(|e| format!("checkpoint at start: {e}"))?;
        Ok(Opening {
            source,
            verifier_key: verifier_key.to_owned(),
            note,
            checkpoint,
        })
    }

    /// Audits the log as it is now against the opening checkpoint, `roll` and the
    /// receipts the voters were given.
    pub async fn close(
        self,
        roll: &Path,
        receipts: &[Logged],
        receipts_not_kept: u64,
        max_entries: u64,
    ) -> AuditReport {
        let mut r = AuditReport {
            start_size: self.checkpoint.size,
            receipts_not_kept,
            ..AuditReport::default()
        };
        if receipts_not_kept > 0 {
            r.failures.push(format!(
                "{receipts_not_kept} receipts were not kept for the audit (over its bound)"
            ));
        }
        let roll = match Roll::load(roll) {
            Ok(roll) => Arc::new(roll),
            Err(e) => {
                r.failures.push(format!("roll {}: {e}", roll.display()));
                return r;
            }
        };
        let end = match self.source.get("checkpoint", MAX_CHECKPOINT_BYTES).await {
            Ok(note) => match verify_checkpoint(&note, &self.verifier_key) {
                Ok(c) => c,
                Err(e) => {
                    r.failures.push(format!("checkpoint at the end: {e}"));
                    return r;
                }
            },
            Err(e) => {
                r.failures.push(format!("checkpoint at the end: {e}"));
                return r;
            }
        };
        r.end_size = end.size;
        if end.size > max_entries {
            r.failures.push(format!(
                "the log has {} entries, more than audit_max_entries = {max_entries}: not audited",
                end.size
            ));
            return r;
        }
        let req = AuditRequest {
            source: self.source.clone(),
            verifier_key: self.verifier_key.clone(),
            roll,
            previous: Some(self.note.clone()),
            bundles_ahead: 2,
            save_to: None,
            progress_every: None,
            max_per_kind: MAX_KEPT,
            tally: None,
        };
        match urna::audit::audit(req).await {
            Ok(report) => {
                r.entries_checked = report.summary.checked;
                if !report.complete {
                    r.failures.push(format!(
                        "the audit stopped after {} of {} entries",
                        report.summary.checked, report.summary.tree_size
                    ));
                }
                for (kind, n) in report.violations.counts() {
                    r.violations.insert(kind.code().to_owned(), n);
                }
                r.violation_examples = report
                    .violations
                    .kept()
                    .take(MAX_KEPT)
                    .map(|v| v.to_string())
                    .collect();
                r.consistent = report.summary.extends_previous_size == Some(self.checkpoint.size)
                    && !r.violations.contains_key("not_extended")
                    && !r.violations.contains_key("log_shrank");
                if !report.violations.is_empty() {
                    r.failures
                        .push(format!("the log breaks its rules: {:?}", r.violations));
                }
                if !r.consistent {
                    r.failures.push(format!(
                        "the log at the end (size {}) was not shown to extend the one at the \
                         start (size {})",
                        end.size, self.checkpoint.size
                    ));
                }
            }
            Err(e) => r.failures.push(format!("audit: {e}")),
        }
        self.check_receipts(&end, receipts, &mut r).await;
        r.passed = r.failures.is_empty();
        r
    }

    /// Every receipt's entry is the leaf at its index in the tree `end`.
    async fn check_receipts(&self, end: &CheckpointBody, receipts: &[Logged], r: &mut AuditReport) {
        let mut sorted: Vec<&Logged> = receipts.iter().collect();
        sorted.sort_by_key(|l| l.index);
        let missing = |r: &mut AuditReport, why: String| {
            r.receipts_missing += 1;
            if r.receipt_examples.len() < MAX_KEPT {
                r.receipt_examples.push(why);
            }
        };
        let mut i = 0;
        // Bounded: each turn consumes at least one receipt.
        while i < sorted.len() {
            let lo = sorted[i].index - sorted[i].index % MAX_LEAVES_PER_READ;
            let hi = (lo + MAX_LEAVES_PER_READ).min(end.size);
            let in_chunk = sorted[i..]
                .iter()
                .take_while(|l| l.index < lo + MAX_LEAVES_PER_READ)
                .count();
            let chunk = &sorted[i..i + in_chunk];
            i += in_chunk;
            r.receipts_checked += chunk.len() as u64;
            if lo >= end.size {
                for l in chunk {
                    missing(
                        r,
                        format!("entry {}: past the end tree (size {})", l.index, end.size),
                    );
                }
                continue;
            }
            match leaf_hashes(&self.source, lo, hi, end).await {
                Ok(leaves) => {
                    for l in chunk {
                        match leaves.get((l.index - lo) as usize) {
                            Some(h) if *h == l.leaf => {}
                            Some(_) => missing(
                                r,
                                format!(
                                    "entry {}: the log holds other bytes than the receipt's",
                                    l.index
                                ),
                            ),
                            None => missing(
                                r,
                                format!("entry {}: past the end tree (size {})", l.index, end.size),
                            ),
                        }
                    }
                }
                Err(e) => {
                    for l in chunk {
                        missing(r, format!("entry {}: {e}", l.index));
                    }
                }
            }
        }
        if r.receipts_missing > 0 {
            r.failures.push(format!(
                "{} of {} receipts are not in the log as given",
                r.receipts_missing, r.receipts_checked
            ));
        }
    }
}
