//! Faults: a failed fsync poisons the store with no receipt for its batch; a simulated power
//! loss at random points never loses a receipted entry and always reopens; the gate's
//! answers (existing, reject) and the bounded queue behave as promised.

mod common;

use common::{leaf, open_sim, rt, H};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;
use urna::audit::proof::{verify_consistency, verify_inclusion};
use urna::audit::receipt::{verify_checkpoint, verify_receipt, VerifiedReceipt};
use urna::log::sim::SimStorage;
use urna::log::{Admission, Gate, LogConfig, Opaque, SubmitError};

#[test]
fn failed_fsync_gives_no_receipt_and_refuses_every_later_write() {
    let origin = "urna.test/fsync";
    let disk = SimStorage::new();
    let (log, writer) =
        open_sim(&disk, common::config(origin), common::key(origin), Opaque).unwrap();
    let rt = rt();
    let syncs_before = disk.sync_count();
    // Each batch syncs twice (segment, checkpoint): the 5th sync is batch "c"'s segment.
    disk.fail_sync_after(5);
    rt.block_on(async {
        assert_eq!(log.submit(b"a".to_vec()).await.unwrap().index, 1);
        assert_eq!(log.submit(b"b".to_vec()).await.unwrap().index, 2);
        let r = log.submit(b"c".to_vec()).await;
        assert!(matches!(r, Err(SubmitError::Poisoned)), "{r:?}");
        // No retry, no later write: even though the disk works again.
        let r = log.submit(b"d".to_vec()).await;
        assert!(matches!(r, Err(SubmitError::Poisoned)), "{r:?}");
    });
    assert!(log.is_poisoned());
    // The published checkpoint never covered the failed batch.
    assert_eq!(log.size(), 3);
    assert!(log.receipt(3).is_err());
    writer.join().unwrap();
    assert_eq!(
        disk.sync_count(),
        syncs_before + 5,
        "no fsync after the failed one"
    );
}

#[test]
fn failed_fsync_fails_every_waiter_of_its_batch() {
    let origin = "urna.test/fsync2";
    let disk = SimStorage::new();
    let cfg = LogConfig {
        batch_delay_us: 200_000,
        ..common::config(origin)
    };
    let (log, writer) = open_sim(&disk, cfg, common::key(origin), Opaque).unwrap();
    disk.fail_sync_after(1);
    let rt = rt();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.submit(vec![i]).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(SubmitError::Poisoned))));
    assert_eq!(log.size(), 1);
    writer.join().unwrap();
}

/// Reopens `disk` and checks every receipt: the entry is still at its index, it is included
/// in the new checkpoint, and the new checkpoint is consistent with the receipt's.
fn check_survivors(
    disk: &SimStorage,
    key: &urna::log::LogKey,
    receipts: &[VerifiedReceipt],
    what: &str,
) {
    let origin = key.name().to_owned();
    let (log, writer) = open_sim(disk, common::config(&origin), key.clone(), Opaque)
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let cp = verify_checkpoint(&log.checkpoint().note, key.verifier_key()).unwrap();
    for r in receipts {
        assert!(
            r.index < cp.size,
            "{what}: receipted entry {} lost",
            r.index
        );
        assert_eq!(
            log.entry(r.index).unwrap(),
            r.entry,
            "{what}: entry {} changed",
            r.index
        );
        let p: Vec<H> = log
            .inclusion(r.index, cp.size)
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert!(
            verify_inclusion(r.index, cp.size, &leaf(&r.entry), &p, &cp.root),
            "{what}"
        );
        let old = &r.checkpoint;
        let c: Vec<H> = log
            .consistency(old.size, cp.size)
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert!(
            verify_consistency(old.size, cp.size, &old.root, &cp.root, &c),
            "{what}"
        );
    }
    drop(log);
    writer.join().unwrap();
}

#[test]
fn power_loss_at_random_points_loses_no_receipted_entry() {
    let origin = "urna.test/power";
    let rt = rt();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut crashed = 0;
    for round in 0..150u64 {
        let key = common::key(origin);
        let disk = SimStorage::new();
        // Small segments so crashes also land around segment creation.
        let cfg = LogConfig {
            segment_max_bytes: 2048,
            ..common::config(origin)
        };
        let (log, writer) = open_sim(&disk, cfg, key.clone(), Opaque).unwrap();
        disk.crash_after_ops(rng.gen_range(1..120));
        let vkey = key.verifier_key().to_owned();
        let receipts = rt.block_on(async {
            let tasks: Vec<_> = (0..16u64)
                .map(|t| {
                    let log = log.clone();
                    let vkey = vkey.clone();
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        for i in 0..8u64 {
                            match log.submit(format!("r{round} t{t} i{i}").into_bytes()).await {
                                Ok(l) => got.push(verify_receipt(&l.receipt, &vkey).unwrap()),
                                Err(SubmitError::Poisoned) | Err(SubmitError::Stopped) => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        got
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        if disk.crashed() {
            crashed += 1;
        }
        // Every handle gone: the writer ends (if power did not already stop it).
        drop(log);
        writer.join().unwrap();
        for seed in 0..3 {
            let after = disk.after_power_loss(round * 10 + seed);
            check_survivors(
                &after,
                &key,
                &receipts,
                &format!("round {round} seed {seed}"),
            );
        }
    }
    assert!(crashed > 100, "only {crashed} rounds crashed");
}

/// A gate that logs each distinct item once, refuses "bad", and remembers across restarts.
#[derive(Default)]
struct Dedup {
    seen: HashMap<Vec<u8>, u64>,
}

impl Gate for Dedup {
    type Item = Vec<u8>;
    type Reject = &'static str;
    fn admit(&mut self, item: Vec<u8>, next: u64) -> Admission<&'static str> {
        if item == b"bad" {
            return Admission::Reject("bad");
        }
        if let Some(&i) = self.seen.get(&item) {
            return Admission::Existing(i);
        }
        self.seen.insert(item.clone(), next);
        Admission::Append(item)
    }
    fn replay(&mut self, index: u64, entry: &[u8]) -> Result<(), String> {
        self.seen.insert(entry.to_vec(), index);
        Ok(())
    }
}

#[test]
fn existing_items_get_the_same_index_and_rejects_append_nothing() {
    let origin = "urna.test/gate";
    let disk = SimStorage::new();
    let key = common::key(origin);
    let vkey = key.verifier_key().to_owned();
    let (log, writer) =
        open_sim(&disk, common::config(origin), key.clone(), Dedup::default()).unwrap();
    let rt = rt();
    rt.block_on(async {
        let a = log.submit(b"a".to_vec()).await.unwrap();
        assert!(a.new);
        let again = log.submit(b"a".to_vec()).await.unwrap();
        assert!(!again.new);
        assert_eq!(again.index, a.index);
        assert_eq!(verify_receipt(&again.receipt, &vkey).unwrap().entry, b"a");
        assert!(matches!(
            log.submit(b"bad".to_vec()).await,
            Err(SubmitError::Rejected("bad"))
        ));
        assert_eq!(log.size(), 2);
        log.shutdown().await;
    });
    writer.join().unwrap();
    // After a restart the gate is rebuilt by replay.
    let (log, writer) = open_sim(&disk, common::config(origin), key, Dedup::default()).unwrap();
    rt.block_on(async {
        let again = log.submit(b"a".to_vec()).await.unwrap();
        assert_eq!((again.index, again.new), (1, false));
        log.shutdown().await;
    });
    writer.join().unwrap();
}

/// A gate that holds the writer inside `admit` until the test lets it go.
struct Held(mpsc::Receiver<()>);

impl Gate for Held {
    type Item = Vec<u8>;
    type Reject = ();
    fn admit(&mut self, item: Vec<u8>, _: u64) -> Admission<()> {
        let _ = self.0.recv_timeout(Duration::from_secs(10));
        Admission::Append(item)
    }
    fn replay(&mut self, _: u64, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn full_queue_fails_fast_instead_of_waiting() {
    let origin = "urna.test/queue";
    let disk = SimStorage::new();
    let cfg = LogConfig {
        queue_depth: 2,
        batch_max_entries: 1,
        ..common::config(origin)
    };
    let (go, held) = mpsc::channel();
    let (log, writer) = open_sim(&disk, cfg, common::key(origin), Held(held)).unwrap();
    let rt = rt();
    rt.block_on(async {
        // The first item is taken by the writer, which then waits inside the gate.
        let first = tokio::spawn({
            let log = log.clone();
            async move { log.submit(vec![0]).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Two more fill the queue; the next fails at once.
        let queued: Vec<_> = (1..=2u8)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.submit(vec![i]).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = tokio::time::timeout(Duration::from_secs(1), log.submit(vec![9])).await;
        assert!(matches!(r, Ok(Err(SubmitError::QueueFull))), "{r:?}");
        for _ in 0..3 {
            go.send(()).unwrap();
        }
        assert!(first.await.unwrap().is_ok());
        for q in queued {
            assert!(q.await.unwrap().is_ok());
        }
        log.shutdown().await;
    });
    writer.join().unwrap();
}
