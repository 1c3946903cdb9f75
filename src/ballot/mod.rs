//! L5–L6: the ballot wire format, the voter roll, the revote rules and signatures.
//!
//! In the order a ballot meets them:
//!
//! - [`wire`]     — JSON submission → typed [`Ballot`]; the signed message.
//! - [`election`] — the election's id, revote policy and voting window.
//! - [`roll`]     — the voter roll, indexed for O(1) lookup.
//! - [`state`]    — per-voter state and the revote rules (L5 precheck, sequencer decision,
//!   replay from the log).
//! - [`verify`]   — signature verification, single and batched (the only maker of
//!   [`VerifiedBallot`]).
//! - [`pool`]     — the verification threads: off the async runtime, bounded, batched.
//! - [`entry`]    — the logged entry bytes: the manifest (entry 0) and accepted ballots.
//! - [`keys`]     — voter secret keys and signing, for the roll generator, simulator, tests.
//! - [`error`]    — [`BallotError`], one variant per stable wire code.
//!
//! Everything here is pure (no tokio, no sockets); the only I/O is [`Roll::load`].

pub mod election;
pub mod entry;
pub mod error;
pub mod keys;
pub mod pool;
pub mod roll;
pub mod state;
pub mod verify;
pub mod wire;

pub use election::{Difference, Election, RevotePolicy};
pub use entry::{decode_entry, encode_entry, Entry, EntryError, LoggedBallot, Manifest};
pub use error::BallotError;
pub use keys::{AlgMix, VoterKeyRecord, VoterSecret};
pub use roll::{Roll, RollError, VoterId};
pub use state::{Admitted, Decision, Precheck, ReplayError, VoterRecord, VoterStates};
pub use verify::{
    verify, verify_batch, verify_signature, verify_signatures, Ed25519Backend, SignedItem,
    VerifiedBallot,
};
pub use wire::{parse_submission, signed_message, Alg, Ballot, BallotDigest, Limits, PublicKey};
