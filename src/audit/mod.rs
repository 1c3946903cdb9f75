//! Verifying what the log publishes: receipts (tlog-proof) and whole logs.
//!
//! - [`proof`]   — RFC 9162 inclusion and consistency verification, from the RFC.
//! - [`receipt`] — offline receipt verification (`urna verify-receipt`).

pub mod proof;
pub mod receipt;
