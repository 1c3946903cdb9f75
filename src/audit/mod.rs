//! Verifying what the log publishes: receipts (tlog-proof) and whole logs.
//!
//! - [`proof`]   — RFC 9162 inclusion and consistency verification, from the RFC.
//! - [`receipt`] — offline receipt verification (`urna verify-receipt`); checkpoints.
//! - [`tree`]    — the RFC 6962 tree and its hash tiles, rebuilt leaf by leaf. Spec code.
//! - [`check`]   — a whole log's checks: entries, signatures, rules, tiles, root. Spec code.
//! - [`report`]  — what an audit found: violations by index and kind, bounded. Spec code.
//! - [`tally`]   — the tally-ready set (`urna audit --tally`): each voter's counted ballot.
//! - [`fetch`]   — where the public files come from: HTTPS or a mirror directory.
//! - [`run`]     — the order of an audit's work (`urna audit`).
//! - [`tiled`]   — consistency and inclusion proofs from a log's tiles, checked by [`proof`].
//! - [`mirror`]  — a verified, resumable copy of a log's files (`urna mirror`).
//! - [`monitor`] — following a live log checkpoint by checkpoint (`urna monitor`).

pub mod check;
pub mod fetch;
pub mod mirror;
pub mod monitor;
pub mod proof;
pub mod receipt;
pub mod report;
pub mod run;
pub mod tally;
pub mod tiled;
pub mod tree;

pub use check::{AuditError, Report, Summary};
pub use fetch::{FetchLimits, HttpsSource, Source};
pub use report::{Violation, ViolationKind, Violations};
pub use run::{audit, AuditRequest};
