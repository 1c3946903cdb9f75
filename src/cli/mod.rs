//! The `urna` binary's larger subcommands (the small ones live in `src/main.rs`).
//!
//! - [`observe`] — `urna verify-receipt`, `urna mirror`, `urna monitor`: the observers' tools.
//! - [`serve`] — `urna serve`: the checks, the start order, the banner, the election's close.

pub mod observe;
pub mod serve;
