//! The `urna` binary's larger subcommands (the small ones live in `src/main.rs`).
//!
//! - [`serve`] — `urna serve`: the checks, the start order, the banner, the election's close.

pub mod serve;
