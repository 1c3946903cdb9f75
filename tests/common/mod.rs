//! Helpers shared by the log's integration tests: an RFC 9162 §2.1 reference written
//! straight from the RFC's recursive definitions (independent of both `tlog_tiles` and
//! `urna::audit`), and a small log opener.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::sync::Arc;
use urna::log::sim::SimStorage;
use urna::log::{Gate, Log, LogConfig, LogHandle, LogKey};

pub type H = [u8; 32];

pub fn leaf(entry: &[u8]) -> H {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node(l: &H, r: &H) -> H {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// Largest power of two strictly less than n (n > 1).
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 MTH over leaf hashes.
pub fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = k_of(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 PATH(m, D[n]).
pub fn path(m: usize, leaves: &[H]) -> Vec<H> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 9162 PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
pub fn consistency(m: usize, leaves: &[H]) -> Vec<H> {
    fn sub(m: usize, d: &[H], b: bool) -> Vec<H> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = sub(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
    sub(m, leaves, true)
}

pub fn key(origin: &str) -> LogKey {
    LogKey::generate(origin).expect("valid origin").1
}

pub fn config(origin: &str) -> LogConfig {
    LogConfig {
        origin: origin.to_owned(),
        ..LogConfig::default()
    }
}

/// Opens a log on a simulated disk.
pub fn open_sim<G: Gate>(
    disk: &SimStorage,
    cfg: LogConfig,
    key: LogKey,
    gate: G,
) -> Result<(LogHandle<G>, std::thread::JoinHandle<()>), urna::log::LogError> {
    Log::open_with(Arc::new(disk.clone()), cfg, key, gate, || {
        b"genesis".to_vec()
    })
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
