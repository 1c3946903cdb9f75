//! The gate: the single writer's final say over each submitted item (docs/ARCHITECTURE.md, L7). The
//! log knows nothing of ballots; the ballot layer implements this trait to run the final
//! duplicate/revote check in log order.

use std::convert::Infallible;

/// The single writer's final say over each submitted item, called in log order, so it sees
/// every entry before it. After a write/fsync failure the store is poisoned and the process
/// exits, so a gate never needs to roll back.
pub trait Gate: Send + 'static {
    /// What a submitter hands in (e.g. a verified ballot).
    type Item: Send + 'static;
    /// Why the gate refused it (e.g. a ballot error code).
    type Reject: Send + std::fmt::Debug + 'static;
    /// Decides on one item; `next_index` is the index it would get. An `Append` must be at
    /// most 65,535 bytes and an `Existing` index below `next_index`; a gate that breaks this
    /// stops the store.
    fn admit(&mut self, item: Self::Item, next_index: u64) -> Admission<Self::Reject>;
    /// Rebuilds state on open: called once per logged entry, in order, during recovery (and
    /// for the genesis entry when a log is created).
    fn replay(&mut self, index: u64, entry: &[u8]) -> Result<(), String>;
}

/// What the gate decided about one item.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<R> {
    /// Log these bytes as a new entry.
    Append(Vec<u8>),
    /// Already logged at this index: answer with its receipt, append nothing.
    Existing(u64),
    /// Refused.
    Reject(R),
}

/// For the log's own tests, benches and tools: every item is appended as is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Opaque;

impl Gate for Opaque {
    type Item = Vec<u8>;
    type Reject = Infallible;

    fn admit(&mut self, item: Vec<u8>, _next_index: u64) -> Admission<Infallible> {
        Admission::Append(item)
    }

    fn replay(&mut self, _index: u64, _entry: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
