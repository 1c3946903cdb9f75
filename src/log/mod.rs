//! L7: the Merkle-logged, append-only ballot store.
//!
//! The files, from the bytes on disk up to the handle the server holds:
//!
//! - [`record`]    — segment record framing (length, CRC-32C). Spec code.
//! - [`storage`]   — the file I/O trait and its real backend; [`sim`] a disk that loses power.
//! - [`tree`]      — the RFC 6962 tree as stored hashes: roots, proofs, tiles. Spec code.
//! - [`tiles`]     — C2SP tlog-tiles paths and entry bundles. Spec code.
//! - [`note`]      — signed checkpoints and tlog-proof text. Spec code.
//! - [`slots`]     — the two-slot checkpoint file. Spec code.
//! - [`key`]       — the log's Ed25519 key (signed-note format).
//! - [`recovery`]  — what is on disk, checked before anything changes; [`inspect`] read-only.
//! - [`store`]     — segments, recovery, the commit step (durability order), the read side.
//! - [`gate`]      — the single writer's final say (the ballot layer's duplicate check).
//! - [`sequencer`] — the writer thread, group commit, and [`LogHandle`].
//! - [`receipt`]   — the receipt a voter keeps.
//! - [`config`]    — the `[log]` configuration table.

pub mod config;
pub mod gate;
pub mod key;
pub mod note;
pub mod receipt;
pub mod record;
pub mod recovery;
pub mod sequencer;
pub mod sim;
pub mod slots;
pub mod storage;
pub mod store;
pub mod tiles;
pub mod tree;

pub use config::LogConfig;
pub use gate::{Admission, Gate, Opaque};
pub use key::{KeyError, LogKey};
pub use note::SignedCheckpoint;
pub use receipt::Receipt;
pub use recovery::{first_entry, inspect, Inspection};
pub use sequencer::{Log, LogHandle, Logged, SubmitError};
pub use storage::{FsStorage, SegmentFile, SlotFile, Storage};
pub use store::{LogError, ReadError};
pub use tlog_tiles::Hash;
