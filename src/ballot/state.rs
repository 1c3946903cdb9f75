//! Voter state and the revote rules (docs/PROTOCOL.md): what each voter has logged so far, and
//! the decision for their next submission.
//!
//! Two callers:
//! - L5, before the signature: [`VoterStates::precheck`] refuses what the current state
//!   already rules out, and recognises byte-identical repeats, so neither costs a signature
//!   verification.
//! - The log's single writer, in log order: [`VoterStates::admit`] (or [`decide`] +
//!   [`record`]) makes the final decision, and [`replay_entry`] rebuilds the state from the
//!   log's entries on restart. The writer owns the state; L5 reads it through the lock the
//!   server wraps it in (e.g. `Arc<RwLock<VoterStates>>`: reads are a few hundred ns, the
//!   writer holds the lock once per batch).
//!
//! [`decide`]: VoterStates::decide
//! [`record`]: VoterStates::record
//! [`replay_entry`]: VoterStates::replay_entry

use std::sync::Arc;

use super::election::{Election, RevotePolicy};
use super::entry::{decode_entry, encode_entry, Entry, EntryError, Manifest};
use super::error::BallotError;
use super::roll::{Roll, VoterId};
use super::verify::VerifiedBallot;
use super::wire::{Ballot, BallotDigest};

/// One voter's last logged ballot. 40 bytes a voter (8 seq + 8 index + 16 digest + 4 count,
/// padded to 8): 400 MB for a 10M-voter roll, allocated once at startup, so the state can never grow past the
/// roll whatever the network sends. The digest is what lets an identical repeat be answered
/// with its original index without reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoterRecord {
    /// `seq` of the last logged ballot; 0 = nothing logged yet (real seqs start at 1).
    pub seq: u64,
    /// Log index of that ballot.
    pub index: u64,
    /// [`Ballot::digest`] of that ballot.
    pub digest: BallotDigest,
    /// How many ballots this voter has logged (for `max_ballots_per_voter`).
    pub count: u32,
}

/// Default for [`VoterStates::with_max_ballots_per_voter`]: generous for honest revoting
/// (a coerced voter revotes a handful of times), small enough that one key cannot turn the
/// log into its own storage.
pub const DEFAULT_MAX_BALLOTS_PER_VOTER: u32 = 32;

/// What L5 may do with a ballot before its signature is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precheck {
    /// Not ruled out: verify the signature, then send it to the sequencer.
    Verify(VoterId),
    /// Byte-identical to the ballot already logged at this index (which was verified
    /// before it was logged): answer with that receipt, no verification needed.
    Repeat(u64),
}

/// The sequencer's final decision for a verified ballot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Log it (then [`VoterStates::record`] it at its index).
    New(VoterId),
    /// Identical to the ballot at this index: answer with its receipt, append nothing.
    Repeat(u64),
    Reject(BallotError),
}

/// What the writer does with a ballot after [`VoterStates::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Append these entry bytes at the index passed in (already recorded in the state).
    Append(Vec<u8>),
    /// Already logged at this index.
    Existing(u64),
}

/// The log contradicts the roll, the election or the rules: the state cannot be rebuilt
/// and the server must not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {index}: {source}")]
    Entry { index: u64, source: EntryError },
    #[error("entry 0 is not a manifest")]
    NoManifest,
    #[error("entry {0} is a manifest; only entry 0 may be")]
    ExtraManifest(u64),
    /// Entry 0 pins the election's settings and roll for the life of the log; each
    /// difference names the setting and both values.
    #[error("the log's manifest does not match this server: {}", join(.0))]
    ManifestMismatch(Vec<super::election::Difference>),
    #[error("entry {index}: {reason}")]
    Rule { index: u64, reason: String },
}

fn join(differences: &[super::election::Difference]) -> String {
    let all: Vec<String> = differences.iter().map(|d| d.to_string()).collect();
    all.join("; ")
}

/// Every voter's state, dense by [`VoterId`].
pub struct VoterStates {
    roll: Arc<Roll>,
    election: Election,
    records: Vec<VoterRecord>,
    /// Most ballots one voter may have logged under revote `last`. Without it one eligible
    /// key could append entries (up to ~16 KiB each) for as long as the election runs.
    max_ballots_per_voter: u32,
}

impl VoterStates {
    /// Fresh state: nobody has voted.
    pub fn new(roll: Arc<Roll>, election: Election) -> VoterStates {
        let records = vec![VoterRecord::default(); roll.len()];
        VoterStates {
            roll,
            election,
            records,
            max_ballots_per_voter: DEFAULT_MAX_BALLOTS_PER_VOTER,
        }
    }

    /// Set the per-voter cap (config `max_ballots_per_voter`; at least 1). Enforced on new
    /// ballots only: replay accepts whatever the log holds, so lowering the cap never stops
    /// a server from restarting.
    pub fn with_max_ballots_per_voter(mut self, max: u32) -> VoterStates {
        self.max_ballots_per_voter = max.max(1);
        self
    }

    pub fn election(&self) -> &Election {
        &self.election
    }

    pub fn roll(&self) -> &Roll {
        &self.roll
    }

    /// The voter's last logged ballot, if any.
    pub fn last(&self, voter: VoterId) -> Option<VoterRecord> {
        self.records
            .get(voter.0 as usize)
            .copied()
            .filter(|r| r.seq != 0)
    }

    /// L5: every check that needs no signature, cheapest first: election → roll → window
    /// → seq against the voter's state. `now_ms` is the receive time.
    pub fn precheck(&self, ballot: &Ballot, now_ms: u64) -> Result<Precheck, BallotError> {
        let voter = self.eligible(ballot)?;
        self.election.check_window(now_ms)?;
        match self.rule(voter, ballot.seq(), || ballot.digest())? {
            Some(index) => Ok(Precheck::Repeat(index)),
            None => Ok(Precheck::Verify(voter)),
        }
    }

    /// The sequencer's decision, against the state as of everything logged before it.
    /// `received_ms` is the time the server received the ballot (logged in the entry).
    pub fn decide(&self, ballot: &VerifiedBallot, received_ms: u64) -> Decision {
        let b = ballot.ballot();
        let voter = match self.eligible(b) {
            Ok(v) => v,
            Err(e) => return Decision::Reject(e),
        };
        if let Err(e) = self.election.check_window(received_ms) {
            return Decision::Reject(e);
        }
        match self.rule(voter, b.seq(), || ballot.digest()) {
            Ok(None) => Decision::New(voter),
            Ok(Some(index)) => Decision::Repeat(index),
            Err(e) => Decision::Reject(e),
        }
    }

    /// Note that `voter`'s ballot `seq` (with this digest) is logged at `index`.
    pub fn record(&mut self, voter: VoterId, seq: u64, digest: BallotDigest, index: u64) {
        if let Some(r) = self.records.get_mut(voter.0 as usize) {
            *r = VoterRecord {
                seq,
                index,
                digest,
                count: r.count.saturating_add(1),
            };
        }
    }

    /// The writer's whole step: decide, and if new, record at `next_index` and return the
    /// entry bytes to append there. This is the `Gate::admit` of the log.
    pub fn admit(
        &mut self,
        ballot: &VerifiedBallot,
        received_ms: u64,
        next_index: u64,
    ) -> Result<Admitted, BallotError> {
        match self.decide(ballot, received_ms) {
            Decision::New(voter) => {
                self.record(voter, ballot.ballot().seq(), ballot.digest(), next_index);
                Ok(Admitted::Append(encode_entry(ballot, received_ms)))
            }
            Decision::Repeat(index) => Ok(Admitted::Existing(index)),
            Decision::Reject(e) => Err(e),
        }
    }

    /// Rebuild from the log, one entry at a time in index order (the log's `Gate::replay`).
    /// Entry 0 must be the manifest of this election and roll; every later entry a ballot
    /// that the rules would have admitted at that point. Signatures are not re-verified
    /// here (the auditor does that); everything else is.
    pub fn replay_entry(&mut self, index: u64, entry: &[u8]) -> Result<(), ReplayError> {
        let decoded = decode_entry(entry).map_err(|source| ReplayError::Entry { index, source })?;
        self.replay(index, &decoded)
    }

    /// [`VoterStates::replay_entry`] for an entry already decoded: the auditor decodes (and
    /// verifies signatures) in parallel, then applies the rules here, in log order.
    pub fn replay(&mut self, index: u64, decoded: &Entry) -> Result<(), ReplayError> {
        let digest = match decoded {
            Entry::Ballot(lb) => Some(lb.digest()),
            Entry::Manifest(_) => None,
        };
        self.replay_digested(index, decoded, digest)
    }

    /// [`VoterStates::replay`] with the ballot's digest ([`crate::ballot::LoggedBallot::digest`]) already
    /// computed, `None` for a manifest: the auditor hashes each ballot on its parallel
    /// threads, so its in-order path (one core) does not hash the payload again. A digest
    /// that is not the ballot's would corrupt the identical-repeat rule: only the entry's
    /// own is ever passed.
    pub fn replay_digested(
        &mut self,
        index: u64,
        decoded: &Entry,
        digest: Option<BallotDigest>,
    ) -> Result<(), ReplayError> {
        match (index, decoded) {
            (0, Entry::Manifest(m)) => {
                // The log key is not the ballot layer's to know: the log checks its
                // checkpoints against it, and the service compares the whole manifest.
                let configured = Manifest {
                    election: self.election.clone(),
                    roll_sha256: self.roll.sha256(),
                    log_verifier_key: m.log_verifier_key.clone(),
                };
                let differences = m.differences(&configured);
                if differences.is_empty() {
                    Ok(())
                } else {
                    Err(ReplayError::ManifestMismatch(differences))
                }
            }
            (0, Entry::Ballot(_)) => Err(ReplayError::NoManifest),
            (i, Entry::Manifest(_)) => Err(ReplayError::ExtraManifest(i)),
            (i, Entry::Ballot(lb)) => {
                let rule = |reason: String| ReplayError::Rule { index: i, reason };
                let voter = self.eligible(&lb.ballot).map_err(|e| rule(e.to_string()))?;
                self.election
                    .check_window(lb.received_ms)
                    .map_err(|e| rule(e.to_string()))?;
                let digest = digest.unwrap_or_else(|| lb.digest());
                match self.rule_with_cap(voter, lb.ballot.seq(), || digest, u32::MAX) {
                    Ok(None) => {
                        self.record(voter, lb.ballot.seq(), digest, i);
                        Ok(())
                    }
                    Ok(Some(j)) => Err(rule(format!("repeats entry {j}"))),
                    Err(e) => Err(rule(e.to_string())),
                }
            }
        }
    }

    fn eligible(&self, ballot: &Ballot) -> Result<VoterId, BallotError> {
        if ballot.election() != self.election.id() {
            return Err(BallotError::WrongElection {
                expected: self.election.id().to_owned(),
                got: ballot.election().to_owned(),
            });
        }
        self.roll
            .lookup(ballot.key())
            .ok_or(BallotError::NotEligible)
    }

    /// The revote rules. `Ok(None)` = new ballot; `Ok(Some(i))` = identical repeat of the
    /// ballot at index `i`. The digest is computed only when needed (equal seq), so the
    /// common case hashes nothing.
    fn rule(
        &self,
        voter: VoterId,
        seq: u64,
        digest: impl FnOnce() -> BallotDigest,
    ) -> Result<Option<u64>, BallotError> {
        self.rule_with_cap(voter, seq, digest, self.max_ballots_per_voter)
    }

    fn rule_with_cap(
        &self,
        voter: VoterId,
        seq: u64,
        digest: impl FnOnce() -> BallotDigest,
        max_ballots: u32,
    ) -> Result<Option<u64>, BallotError> {
        let Some(last) = self.last(voter) else {
            return Ok(None);
        };
        match self.election.revote() {
            RevotePolicy::Last => {
                if seq > last.seq {
                    if last.count >= max_ballots {
                        return Err(BallotError::TooManyBallots { max: max_ballots });
                    }
                    Ok(None)
                } else if seq < last.seq {
                    Err(BallotError::StaleSeq {
                        got: seq,
                        last: last.seq,
                    })
                } else if digest() == last.digest {
                    Ok(Some(last.index))
                } else {
                    Err(BallotError::Conflict { seq })
                }
            }
            RevotePolicy::None => {
                if seq == last.seq && digest() == last.digest {
                    Ok(Some(last.index))
                } else {
                    Err(BallotError::AlreadyVoted)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::keys::VoterSecret;
    use crate::ballot::verify::verify;
    use crate::ballot::wire::{parse_submission, Limits};

    struct Fixture {
        voters: Vec<VoterSecret>,
        roll: Arc<Roll>,
    }

    fn fixture(n: u8) -> Fixture {
        let voters: Vec<_> = (0..n)
            .map(|i| VoterSecret::ed25519_from_seed(&[i + 1; 32]))
            .collect();
        let text: String = voters.iter().map(|v| v.roll_line() + "\n").collect();
        let roll = Arc::new(Roll::parse(text.as_bytes(), 0).unwrap());
        Fixture { voters, roll }
    }

    fn ballot(v: &VoterSecret, election: &str, seq: u64, payload: &[u8]) -> Ballot {
        parse_submission(
            v.sign_submission(election, seq, payload).as_bytes(),
            &Limits::default(),
        )
        .unwrap()
    }

    fn admit(s: &mut VoterStates, b: &Ballot, next: u64) -> Result<Admitted, BallotError> {
        s.admit(&verify(b.clone()).unwrap(), 100, next)
    }

    #[test]
    fn state_can_move_to_the_writer_thread_and_be_shared_with_l5() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<VoterStates>();
        shared::<VerifiedBallot>();
        shared::<Ballot>();
    }

    #[test]
    fn stale_seq_cannot_undo_revote() {
        let f = fixture(1);
        let e = Election::new("e", RevotePolicy::Last, None, None).unwrap();
        let mut s = VoterStates::new(f.roll.clone(), e);
        let b1 = ballot(&f.voters[0], "e", 1, b"a");
        let b2 = ballot(&f.voters[0], "e", 2, b"b");
        assert!(matches!(admit(&mut s, &b1, 1), Ok(Admitted::Append(_))));
        assert!(matches!(admit(&mut s, &b2, 2), Ok(Admitted::Append(_))));
        assert_eq!(s.precheck(&b1, 100).unwrap_err().code(), "stale_seq");
        assert_eq!(admit(&mut s, &b1, 3).unwrap_err().code(), "stale_seq");
        assert_eq!(s.last(VoterId(0)).unwrap().index, 2);
    }

    #[test]
    fn identical_repeat_is_recognised_without_the_log_and_other_content_conflicts() {
        let f = fixture(1);
        let e = Election::new("e", RevotePolicy::Last, None, None).unwrap();
        let mut s = VoterStates::new(f.roll.clone(), e);
        let b1 = ballot(&f.voters[0], "e", 1, b"a");
        assert_eq!(s.precheck(&b1, 0), Ok(Precheck::Verify(VoterId(0))));
        admit(&mut s, &b1, 7).unwrap();
        assert_eq!(s.precheck(&b1, 0), Ok(Precheck::Repeat(7)));
        assert_eq!(admit(&mut s, &b1, 8), Ok(Admitted::Existing(7)));
        let other = ballot(&f.voters[0], "e", 1, b"other");
        assert_eq!(s.precheck(&other, 0).unwrap_err().code(), "conflict");
    }

    #[test]
    fn one_voter_cannot_log_more_than_the_cap_but_replay_ignores_it() {
        let f = fixture(1);
        let e = Election::new("e", RevotePolicy::Last, None, None).unwrap();
        let mut s = VoterStates::new(f.roll.clone(), e.clone()).with_max_ballots_per_voter(3);
        let mut log = vec![Manifest {
            election: e.clone(),
            roll_sha256: f.roll.sha256(),
            log_verifier_key: "log+00000000+AQ".into(),
        }
        .encode()
        .unwrap()];
        for seq in 1..=3 {
            let b = ballot(&f.voters[0], "e", seq, b"v");
            let Ok(Admitted::Append(bytes)) = admit(&mut s, &b, seq) else {
                panic!("ballot {seq} refused")
            };
            log.push(bytes);
        }
        let fourth = ballot(&f.voters[0], "e", 4, b"v");
        let err = s.precheck(&fourth, 0).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("too_many_ballots", 429));
        assert_eq!(
            admit(&mut s, &fourth, 4).unwrap_err().code(),
            "too_many_ballots"
        );
        // The last ballot can still be fetched again.
        let third = ballot(&f.voters[0], "e", 3, b"v");
        assert_eq!(s.precheck(&third, 0), Ok(Precheck::Repeat(3)));
        // A server restarted with a lower cap still rebuilds its state from the log.
        let mut low = VoterStates::new(f.roll.clone(), e).with_max_ballots_per_voter(1);
        for (i, entry) in log.iter().enumerate() {
            low.replay_entry(i as u64, entry).unwrap();
        }
        assert_eq!(low.last(VoterId(0)).unwrap().count, 3);
    }

    #[test]
    fn revote_none_allows_one_ballot() {
        let f = fixture(1);
        let e = Election::new("e", RevotePolicy::None, None, None).unwrap();
        let mut s = VoterStates::new(f.roll.clone(), e);
        let b1 = ballot(&f.voters[0], "e", 1, b"a");
        admit(&mut s, &b1, 1).unwrap();
        assert_eq!(admit(&mut s, &b1, 2), Ok(Admitted::Existing(1)));
        for (seq, p) in [(2, b"a"), (1, b"b"), (5, b"c")] {
            let b = ballot(&f.voters[0], "e", seq, p);
            assert_eq!(s.precheck(&b, 0).unwrap_err().code(), "already_voted");
        }
    }

    #[test]
    fn prechecks_run_cheapest_first() {
        let f = fixture(1);
        let e = Election::new("e", RevotePolicy::Last, Some(10), Some(20)).unwrap();
        let s = VoterStates::new(f.roll.clone(), e);
        let stranger = VoterSecret::ed25519_from_seed(&[99; 32]);
        // Wrong election wins over everything else.
        assert_eq!(
            s.precheck(&ballot(&stranger, "x", 1, b""), 0)
                .unwrap_err()
                .code(),
            "wrong_election"
        );
        assert_eq!(
            s.precheck(&ballot(&stranger, "e", 1, b""), 0)
                .unwrap_err()
                .code(),
            "not_eligible"
        );
        let b = ballot(&f.voters[0], "e", 1, b"");
        assert_eq!(s.precheck(&b, 9).unwrap_err().code(), "election_not_open");
        assert_eq!(s.precheck(&b, 20).unwrap_err().code(), "election_closed");
        assert!(s.precheck(&b, 15).is_ok());
    }

    #[test]
    fn state_rebuilt_from_the_log_equals_the_live_state() {
        let f = fixture(5);
        let e = Election::new("e", RevotePolicy::Last, None, None).unwrap();
        let manifest = Manifest {
            election: e.clone(),
            roll_sha256: f.roll.sha256(),
            log_verifier_key: "log+00000000+AQ".into(),
        };
        let mut log = vec![manifest.encode().unwrap()];
        let mut live = VoterStates::new(f.roll.clone(), e.clone());
        for round in 1..=3u64 {
            for (i, v) in f.voters.iter().enumerate() {
                if (i as u64 + round).is_multiple_of(2) {
                    continue;
                }
                let b = ballot(v, "e", round, &[i as u8]);
                if let Ok(Admitted::Append(bytes)) = admit(&mut live, &b, log.len() as u64) {
                    log.push(bytes);
                }
            }
        }
        let mut rebuilt = VoterStates::new(f.roll.clone(), e.clone());
        for (i, entry) in log.iter().enumerate() {
            rebuilt.replay_entry(i as u64, entry).unwrap();
        }
        assert_eq!(rebuilt.records, live.records);

        // A log for another roll, or with a ballot replayed out of order, is refused.
        let mut other = VoterStates::new(fixture(2).roll, e.clone());
        let err = other.replay_entry(0, &log[0]).unwrap_err();
        assert!(matches!(err, ReplayError::ManifestMismatch(_)), "{err}");
        assert!(
            err.to_string().contains("election.roll (its SHA-256)"),
            "{err}"
        );
        let mut dup = VoterStates::new(f.roll.clone(), e);
        dup.replay_entry(0, &log[0]).unwrap();
        dup.replay_entry(1, &log[1]).unwrap();
        assert!(matches!(
            dup.replay_entry(2, &log[1]),
            Err(ReplayError::Rule { .. })
        ));
        assert!(matches!(
            dup.replay_entry(3, &log[0]),
            Err(ReplayError::ExtraManifest(3))
        ));
    }
}
