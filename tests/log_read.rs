//! The read side serves tlog-tiles resources byte for byte as the spec defines them, only
//! for what a checkpoint covers, and receipts that verify offline.

mod common;

use common::{leaf, mth, open_sim, rt, H};
use std::time::Duration;
use urna::audit::proof::verify_consistency;
use urna::audit::receipt::{verify_checkpoint, verify_receipt};
use urna::log::sim::SimStorage;
use urna::log::{LogConfig, Opaque, ReadError};

fn e(i: u64) -> Vec<u8> {
    // Varying lengths, including empty ones.
    let mut v = format!("{i}").into_bytes();
    v.resize((i % 700) as usize, b'z');
    v
}

#[test]
fn tiles_and_bundles_match_the_spec_and_stop_at_the_checkpoint() {
    let disk = SimStorage::new();
    let origin = "urna.test/tiles";
    let key = common::key(origin);
    let vkey = key.verifier_key().to_owned();
    // Tiny segments: bundles must be read across segment boundaries.
    let cfg = LogConfig {
        segment_max_bytes: 4096,
        ..common::config(origin)
    };
    let (log, writer) = open_sim(&disk, cfg, key, Opaque).unwrap();
    let rt = rt();
    let n: u64 = 70_000;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut i = t;
                while i < n - 1 {
                    out.push(log.submit(e(i)).await.unwrap());
                    i += 64;
                }
                out
            }));
        }
        for t in tasks {
            for l in t.await.unwrap() {
                assert!(l.new);
                verify_receipt(&l.receipt, &vkey).unwrap();
            }
        }
    });
    assert_eq!(log.size(), n);
    // The log's entries in index order (genesis first), from the read side itself.
    let entries: Vec<Vec<u8>> = (0..n).map(|i| log.entry(i).unwrap()).collect();
    assert_eq!(entries[0], b"genesis");
    let leaves: Vec<H> = entries.iter().map(|x| leaf(x)).collect();

    let cp = verify_checkpoint(&log.read("checkpoint").unwrap(), &vkey).unwrap();
    assert_eq!((cp.size, cp.root), (n, mth(&leaves)));

    // Level 0, full: 256 leaf hashes.
    let t = log.read("tile/0/001").unwrap();
    assert_eq!(t.len(), 8192);
    assert_eq!(t[..32], leaves[256]);
    assert_eq!(t[8160..], leaves[511]);
    // Level 1, full (70,000 ≥ 65,536): hash k is MTH of leaves [256k, 256k + 256).
    let t1 = log.read("tile/1/000").unwrap();
    assert_eq!(t1.len(), 8192);
    for k in [0usize, 17, 255] {
        assert_eq!(
            t1[k * 32..k * 32 + 32],
            mth(&leaves[k * 256..k * 256 + 256])
        );
    }
    // Entry bundle: u16 BE length-prefixed, across segment boundaries.
    let b = log.read("tile/entries/002").unwrap();
    let mut expect = Vec::new();
    for x in &entries[512..768] {
        expect.extend_from_slice(&(x.len() as u16).to_be_bytes());
        expect.extend_from_slice(x);
    }
    assert_eq!(b, expect);
    // 70,000 = 273 × 256 + 112: the last full tile is 272, the partial one has width 112 —
    // served only if 70,000 was a checkpointed size, which it is.
    assert!(log.read("tile/0/272").is_ok());
    assert_eq!(log.read("tile/0/273"), Err(ReadError::NotFound));
    assert_eq!(
        log.read("tile/0/273.p/112").unwrap()[..32],
        leaves[273 * 256]
    );
    assert_eq!(
        log.read("tile/entries/273.p/112")
            .map(|b| b.len() > 112 * 2),
        Ok(true)
    );
    assert_eq!(log.read("tile/0/273.p/113"), Err(ReadError::NotFound));
    assert_eq!(log.read("tile/1/001.p/17").map(|t| t.len()), Ok(17 * 32));
    assert_eq!(log.read("tile/2/000.p/1").map(|t| t.len()), Ok(32));
    assert_eq!(log.read("tile/3/000.p/1"), Err(ReadError::NotFound));
    // Go sumdb paths, and anything else, are not resources.
    for p in [
        "tile/8/0/000",
        "tile/8/data/000",
        "tile/0/1",
        "entries/000",
        "tile/0/x001/000",
    ] {
        assert_eq!(log.read(p), Err(ReadError::NotFound), "{p}");
    }
    // Receipts for any index, against the latest checkpoint.
    for i in [0, 1, 255, 256, 69_999] {
        let v = verify_receipt(&log.receipt(i).unwrap(), &vkey).unwrap();
        assert_eq!(v.entry, entries[i as usize]);
        assert_eq!(v.checkpoint.size, n);
    }
    assert_eq!(log.receipt(n), Err(ReadError::NotFound));
    // Consistency between sizes.
    let p: Vec<H> = log
        .consistency(1000, n)
        .unwrap()
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert!(verify_consistency(
        1000,
        n,
        &mth(&leaves[..1000]),
        &cp.root,
        &p
    ));
    assert_eq!(log.consistency(1, n + 1), Err(ReadError::NotFound));
    rt.block_on(log.shutdown());
    writer.join().unwrap();
}

#[test]
fn partial_tiles_are_served_only_for_checkpointed_sizes() {
    let disk = SimStorage::new();
    let origin = "urna.test/partial";
    // A long batch delay: 100 submissions queued at once land in one batch, so the only
    // checkpointed sizes are 1 (genesis) and 101.
    let cfg = LogConfig {
        batch_delay_us: 300_000,
        ..common::config(origin)
    };
    let (log, writer) = open_sim(&disk, cfg, common::key(origin), Opaque).unwrap();
    let rt = rt();
    rt.block_on(async {
        let tasks: Vec<_> = (0..100u64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.submit(e(i)).await.unwrap().index })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(log.size(), 101);
    assert!(log.read("tile/0/000.p/101").is_ok());
    assert!(log.read("tile/0/000.p/1").is_ok());
    assert!(log.read("tile/entries/000.p/101").is_ok());
    assert_eq!(log.read("tile/0/000.p/50"), Err(ReadError::NotFound));
    assert_eq!(log.read("tile/entries/000.p/50"), Err(ReadError::NotFound));
    assert_eq!(log.read("tile/0/000.p/102"), Err(ReadError::NotFound));
    assert_eq!(log.read("tile/0/000"), Err(ReadError::NotFound));
    rt.block_on(log.shutdown());
    writer.join().unwrap();
    // Shut down: later submissions fail fast.
    let r = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), log.submit(vec![1])).await
    });
    assert!(matches!(r, Ok(Err(urna::log::SubmitError::Stopped))));
}
