//! Recovery on open: a torn tail is cut at the last whole record, wherever the cut falls;
//! losing or changing signed entries is an alarm that refuses to open.

mod common;

use common::{open_sim, rt};
use urna::log::record;
use urna::log::sim::SimStorage;
use urna::log::store::{segment_name, CHECKPOINT_FILE};
use urna::log::{Admission, Gate, LogError, Opaque};

/// A gate that counts what it replays, to show recovery replays every entry once, in order.
#[derive(Default)]
struct Counting {
    replayed: Vec<u64>,
}

impl Gate for Counting {
    type Item = Vec<u8>;
    type Reject = ();
    fn admit(&mut self, item: Vec<u8>, _: u64) -> Admission<()> {
        Admission::Append(item)
    }
    fn replay(&mut self, index: u64, _: &[u8]) -> Result<(), String> {
        self.replayed.push(index);
        Ok(())
    }
}

const ORIGIN: &str = "urna.test/recovery";

/// A disk holding genesis + 20 checkpointed entries, then `extra` records written after the
/// last checkpoint (as if the process died between fsync and checkpoint). Returns the disk,
/// key, and the segment offsets where each record starts.
fn prepared(extra: usize) -> (SimStorage, urna::log::LogKey, Vec<usize>) {
    let disk = SimStorage::new();
    let key = common::key(ORIGIN);
    let (log, writer) = open_sim(&disk, common::config(ORIGIN), key.clone(), Opaque).unwrap();
    let rt = rt();
    rt.block_on(async {
        for i in 0..20u64 {
            log.submit(format!("entry {i}").into_bytes()).await.unwrap();
        }
        log.shutdown().await;
    });
    writer.join().unwrap();
    let name = segment_name(0);
    let mut seg = disk.file(&name).unwrap();
    for i in 0..extra {
        record::encode(
            format!("unsigned {i} {}", "x".repeat(i * 7)).as_bytes(),
            &mut seg,
        );
    }
    let mut starts = Vec::new();
    let mut at = 0;
    while let record::Decoded::Record { next, .. } = record::decode(&seg, at) {
        starts.push(at);
        at = next;
    }
    assert_eq!(starts.len(), 21 + extra);
    starts.push(seg.len());
    disk.set_file(&name, seg);
    (disk, key, starts)
}

fn copy_with_segment(disk: &SimStorage, seg: Vec<u8>) -> SimStorage {
    let d = SimStorage::new();
    d.set_file(CHECKPOINT_FILE, disk.file(CHECKPOINT_FILE).unwrap());
    d.set_file(&segment_name(0), seg);
    d
}

#[test]
fn cut_at_every_byte_of_the_unsigned_tail_recovers_every_whole_record() {
    let (disk, key, starts) = prepared(3);
    let seg = disk.file(&segment_name(0)).unwrap();
    let signed_end = starts[21];
    for cut in signed_end..=seg.len() {
        for garbage in [false, true] {
            let mut s = seg[..cut].to_vec();
            if garbage {
                s.extend_from_slice(&[0xA5; 13]);
            }
            let d = copy_with_segment(&disk, s);
            let (log, writer) =
                open_sim(&d, common::config(ORIGIN), key.clone(), Counting::default())
                    .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let whole = starts
                .iter()
                .filter(|&&s| s < cut && starts.iter().any(|&n| n > s && n <= cut))
                .count() as u64;
            assert_eq!(log.size(), whole, "cut {cut} garbage {garbage}");
            // The torn tail is gone from disk: the segment ends at the last whole record.
            let kept = d.file(&segment_name(0)).unwrap().len();
            assert_eq!(kept, starts[whole as usize], "cut {cut}");
            for i in 0..whole {
                log.entry(i).unwrap();
            }
            drop(log);
            writer.join().unwrap();
        }
    }
}

#[test]
fn recovery_replays_every_entry_into_the_gate_in_order() {
    let (disk, key, _) = prepared(2);
    // The gate is moved into the writer; observe it through a gate that fails on a gap.
    struct Strict(u64);
    impl Gate for Strict {
        type Item = Vec<u8>;
        type Reject = ();
        fn admit(&mut self, i: Vec<u8>, _: u64) -> Admission<()> {
            Admission::Append(i)
        }
        fn replay(&mut self, index: u64, _: &[u8]) -> Result<(), String> {
            if index != self.0 {
                return Err(format!("expected {} got {index}", self.0));
            }
            self.0 += 1;
            Ok(())
        }
    }
    let (log, writer) = open_sim(&disk, common::config(ORIGIN), key.clone(), Strict(0)).unwrap();
    assert_eq!(log.size(), 23);
    drop(log);
    writer.join().unwrap();
    // A gate that refuses replay stops the open.
    struct Refuse;
    impl Gate for Refuse {
        type Item = Vec<u8>;
        type Reject = ();
        fn admit(&mut self, i: Vec<u8>, _: u64) -> Admission<()> {
            Admission::Append(i)
        }
        fn replay(&mut self, index: u64, _: &[u8]) -> Result<(), String> {
            if index == 5 {
                Err("bad".into())
            } else {
                Ok(())
            }
        }
    }
    let r = open_sim(&disk, common::config(ORIGIN), key, Refuse);
    assert!(matches!(r, Err(LogError::GateReplay { index: 5, .. })));
}

#[test]
fn losing_a_signed_entry_at_any_byte_is_an_alarm() {
    let (disk, key, starts) = prepared(0);
    let seg = disk.file(&segment_name(0)).unwrap();
    // Every cut inside the last two signed records.
    for cut in starts[19]..seg.len() {
        let d = copy_with_segment(&disk, seg[..cut].to_vec());
        match open_sim(&d, common::config(ORIGIN), key.clone(), Opaque) {
            Err(LogError::Alarm(_)) => {
                assert_eq!(
                    d.file(&segment_name(0)).unwrap(),
                    seg[..cut],
                    "files untouched"
                );
            }
            Err(e) => panic!("cut {cut}: wrong error {e}"),
            Ok(_) => panic!("cut {cut}: opened without the signed entries"),
        }
    }
}

#[test]
fn changing_a_signed_entry_is_an_alarm_and_a_foreign_checkpoint_too() {
    let (disk, key, starts) = prepared(0);
    let mut seg = disk.file(&segment_name(0)).unwrap();
    // Rewrite record 10 with a valid checksum but other bytes: only the tree notices.
    let mut forged = Vec::new();
    for (i, w) in starts.windows(2).enumerate() {
        if i == 10 {
            let len = w[1] - w[0] - record::HEADER_BYTES;
            record::encode(&vec![b'!'; len], &mut forged);
        } else {
            forged.extend_from_slice(&seg[w[0]..w[1]]);
        }
    }
    assert_eq!(forged.len(), seg.len());
    let d = copy_with_segment(&disk, forged);
    assert!(matches!(
        open_sim(&d, common::config(ORIGIN), key.clone(), Opaque),
        Err(LogError::Alarm(_))
    ));
    // A checkpoint signed by another key.
    let other = common::key(ORIGIN);
    let r = open_sim(&disk, common::config(ORIGIN), other, Opaque);
    assert!(matches!(r, Err(LogError::Alarm(_))));
    // Corruption that is not at the tail of the last segment is not "torn": refuse.
    seg[starts[5] + record::HEADER_BYTES] ^= 1;
    let d = copy_with_segment(&disk, seg.clone());
    assert!(matches!(
        open_sim(&d, common::config(ORIGIN), key, Opaque),
        Err(LogError::Alarm(_))
    ));
    // The refused open left the files as it found them.
    assert_eq!(d.file(&segment_name(0)).unwrap(), seg);
}

#[test]
fn inspect_checks_what_recovery_checks_and_changes_nothing() {
    use urna::log::{first_entry, inspect, Inspection};
    let (disk, key, starts) = prepared(2);
    let seg = disk.file(&segment_name(0)).unwrap();
    // A torn tail: the last record cut after 3 bytes. Reported, not cut.
    let cut = starts[22] + 3;
    let d = copy_with_segment(&disk, seg[..cut].to_vec());
    let mut gate = Counting::default();
    let found = inspect(&d, &key, &mut gate).unwrap();
    let expected = Inspection {
        size: 22,
        checkpoint_size: Some(21),
        torn_bytes: 3,
    };
    assert_eq!(found, expected);
    assert_eq!(gate.replayed, (0..22).collect::<Vec<_>>());
    assert_eq!(
        d.file(&segment_name(0)).unwrap(),
        seg[..cut],
        "left as found"
    );
    // Signed entries lost, or a checkpoint signed by another key: the alarms of recovery.
    let d = copy_with_segment(&disk, seg[..starts[19]].to_vec());
    let lost = inspect(&d, &key, &mut Counting::default());
    assert!(matches!(lost, Err(LogError::Alarm(_))), "{lost:?}");
    let other = inspect(&disk, &common::key(ORIGIN), &mut Counting::default());
    assert!(matches!(other, Err(LogError::Alarm(_))), "{other:?}");
    // Entry 0 alone, for the manifest check; none in an empty log.
    assert_eq!(
        first_entry(&disk).unwrap().as_deref(),
        Some(&b"genesis"[..])
    );
    assert_eq!(first_entry(&SimStorage::new()).unwrap(), None);
}
