//! Urna: a vote-submission endpoint whose every accepted ballot lands in a public,
//! append-only Merkle log.
//!
//! The modules, in the order a ballot meets them (docs/ARCHITECTURE.md):
//!
//! - [`config`] — the whole `urna.toml`, parsed and validated at start.
//! - [`edge`]   — L1–L4: listener, TLS, HTTP limits and admission control.
//! - [`ballot`] — L5–L6: the wire format, the voter roll, the revote rules, signatures.
//! - [`service`] — L5–L7 wired together behind the edge for one election: the
//!   [`edge::Backend`] that `urna serve` runs.
//! - [`log`]    — L7: segments and fsync, the sequencer, the RFC 6962 tree and its tiles,
//!   signed checkpoints and receipts.
//! - [`audit`]  — the other side of the log: verifying receipts and whole logs from their
//!   public files; mirroring and monitoring a live log (docs/AUDITING.md).
// `deny`, not `forbid`: one function may opt out, `edge::sockopt::set_defer_accept`, a
// single `setsockopt` call that no safe crate offers (socket2, nix and rustix lack it).
#![deny(unsafe_code)]

pub mod audit;
pub mod ballot;
pub mod config;
pub mod edge;
pub mod log;
pub mod service;
