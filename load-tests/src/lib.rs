//! Urna's attack simulator: legitimate voters and hostile traffic, together, against a
//! deployment, so an operator can see that real voters still get through while the edge
//! sheds the rest.
//!
//! A run is a [`Scenario`]: one target, a duration, and tasks that run side by side. Each
//! task is a kind of client — voters casting signed ballots (over keep-alive, or arriving
//! once each on a fresh connection), request floods, idle and slow connections, handshake
//! floods, from one address or a pool of a million — with its own connection count, source
//! addresses (many loopback addresses stand in for many clients) and optional rate. The
//! [`Report`] counts every answer by status and error code, with latency percentiles.
//!
//! Modules, in the order a run uses them: [`scenario`] (the TOML file), [`runner`] (a whole
//! run: plan, connect, run side by side), [`kinds`] (what each kind of client does, one file
//! each, and the registry of kinds), [`ballots`] (pre-signing the voters' ballots), [`net`]
//! (connections from chosen source addresses, TLS, HTTP/1.1 or HTTP/2), [`h1`] (the lean
//! HTTP/1.1 client: pre-encoded requests, answers read in the lane's own task), [`report`].
#![forbid(unsafe_code)]

pub mod audit;
pub mod ballots;
pub mod h1;
pub mod html;
pub mod kinds;
pub mod live;
pub mod net;
pub mod progress;
pub mod receipts;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod server;

pub use report::{Report, TaskReport};
pub use runner::{run, run_with, RunOptions};
pub use scenario::{Scenario, Task};
