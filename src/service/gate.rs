//! The ballot layer's final say inside the log's single writer (docs/ARCHITECTURE.md, L7): the
//! duplicate and revote check runs in log order, so two racing submissions from one voter
//! can never both be appended.

use std::sync::{Arc, RwLock};

use crate::ballot::{Admitted, BallotError, VerifiedBallot, VoterStates};
use crate::log::{Admission, Gate};

/// What a request hands the sequencer: a ballot whose signature verified, and when its last
/// byte arrived (the window is judged on it, and it is logged).
pub struct Submission {
    pub ballot: VerifiedBallot,
    pub received_ms: u64,
}

/// [`VoterStates`] as the log's gate. The states are shared with L5, which only reads them
/// (`precheck`); the writer is the only one that changes them.
pub struct BallotGate {
    pub states: Arc<RwLock<VoterStates>>,
}

impl Gate for BallotGate {
    type Item = Submission;
    type Reject = BallotError;

    fn admit(&mut self, item: Submission, next_index: u64) -> Admission<BallotError> {
        // A poisoned lock means a reader panicked while holding it; the state itself is
        // only ever changed here, so it is still consistent.
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        match states.admit(&item.ballot, item.received_ms, next_index) {
            Ok(Admitted::Append(entry)) => Admission::Append(entry),
            Ok(Admitted::Existing(index)) => Admission::Existing(index),
            Err(e) => Admission::Reject(e),
        }
    }

    fn replay(&mut self, index: u64, entry: &[u8]) -> Result<(), String> {
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        states.replay_entry(index, entry).map_err(|e| e.to_string())
    }
}
