//! The real crash test: the `urna` binary appends entries and prints each receipt once it is
//! durable; it is SIGKILLed at random moments, many times. After each kill the log reopens,
//! every receipt ever printed still verifies against the new checkpoint, and the new
//! checkpoint is consistent with every earlier one.

mod common;

use common::{leaf, H};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use urna::audit::proof::{verify_consistency, verify_inclusion};
use urna::audit::receipt::{verify_checkpoint, verify_receipt, CheckpointBody, VerifiedReceipt};
use urna::log::{Log, LogConfig, Opaque, Receipt};

const ROUNDS: usize = 60;

#[test]
fn receipts_survive_sigkill_at_random_moments() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let key_path = tmp.path().join("log.key");
    let origin = "urna.test/sigkill";
    let (skey, key) = urna::log::LogKey::generate(origin).unwrap();
    std::fs::write(&key_path, skey).unwrap();
    let vkey = key.verifier_key().to_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5151);

    let mut receipts: Vec<VerifiedReceipt> = Vec::new();
    let mut checkpoints: Vec<CheckpointBody> = Vec::new();
    let mut killed_while_running = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_urna"))
            .args(["log-writer", "--count", "1000000", "--concurrency", "16"])
            .arg("--dir")
            .arg(&dir)
            .arg("--key")
            .arg(&key_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read whole lines only: a line cut by the kill was never fully sent.
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut lines = Vec::new();
            let mut buf = Vec::new();
            // Bounded: ends at EOF, which comes when the child dies.
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if buf.ends_with(b"\n") => lines.push(buf.clone()),
                    Ok(_) => break,
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(2..80)));
        if child.try_wait().unwrap().is_none() {
            killed_while_running += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for l in &lines {
            let r: Receipt = serde_json::from_slice(l).unwrap();
            let v = verify_receipt(&r, &vkey).unwrap_or_else(|e| panic!("round {round}: {e}"));
            if checkpoints
                .last()
                .is_none_or(|c| c.size != v.checkpoint.size)
            {
                checkpoints.push(v.checkpoint.clone());
            }
            receipts.push(v);
        }

        // Restart: recovery must open, and every earlier promise must still hold.
        let cfg = LogConfig {
            dir: dir.clone(),
            origin: origin.to_owned(),
            segment_max_bytes: 64 * 1024,
            ..LogConfig::default()
        };
        let (log, writer) = Log::open(cfg, key.clone(), Opaque, || b"unused".to_vec())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let cp = verify_checkpoint(&log.checkpoint().note, &vkey).unwrap();
        for r in &receipts {
            assert!(r.index < cp.size, "round {round}: entry {} lost", r.index);
            assert_eq!(log.entry(r.index).unwrap(), r.entry, "round {round}");
            let p: Vec<H> = log
                .inclusion(r.index, cp.size)
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect();
            assert!(verify_inclusion(
                r.index,
                cp.size,
                &leaf(&r.entry),
                &p,
                &cp.root
            ));
        }
        for old in &checkpoints {
            let p: Vec<H> = log
                .consistency(old.size, cp.size)
                .unwrap()
                .iter()
                .map(|h| h.0)
                .collect();
            assert!(
                verify_consistency(old.size, cp.size, &old.root, &cp.root, &p),
                "round {round}: checkpoint {} not extended by {}",
                old.size,
                cp.size
            );
        }
        checkpoints.push(cp);
        drop(log);
        writer.join().unwrap();
    }
    eprintln!(
        "{ROUNDS} kills ({killed_while_running} mid-run), {} receipts, {} checkpoints, {:?}",
        receipts.len(),
        checkpoints.len(),
        started.elapsed()
    );
    assert!(
        killed_while_running >= 50,
        "only {killed_while_running} kills hit a running writer"
    );
    assert!(
        receipts.len() > 100,
        "too few receipts ({}) to mean anything",
        receipts.len()
    );
}
