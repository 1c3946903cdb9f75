//! Backup and restore as docs/OPERATIONS.md tells an operator to do it: `deploy/backup.sh`
//! copies the storage of a real server process while clients cast ballots; a second server
//! started on the copy continues the same log: every receipt answered before the copy began
//! is in it at its index under the same key, the new tree extends every checkpoint those
//! receipts carry, more ballots are taken, and `urna audit` passes the whole log.

mod common;
mod e2e;
mod net;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{ballot, checkpoint, entries, receipt, Server, ELECTION};
use http::StatusCode;
use urna::audit::proof::leaf_hash;
use urna::audit::receipt::{verify_receipt, VerifiedReceipt};
use urna::ballot::VoterSecret;

const VOTERS: u32 = 48;
const CLIENTS: usize = 4;

/// A receipt and when its answer arrived.
type Answered = (Instant, VerifiedReceipt);

/// Casts ballots from every `CLIENTS`th voter (starting at `client`) with a rising seq over
/// one connection until `stop`, keeping every receipt.
async fn cast_until(
    addr: SocketAddr,
    cert: PathBuf,
    vkey: String,
    voters: Arc<Vec<VoterSecret>>,
    client: usize,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Answered>>>,
) {
    let mut h = net::H1::connect(addr, &cert).await;
    // Bounded by `stop`, which the test sets a moment after the copy; each turn waits for
    // an answer.
    for seq in 1u64.. {
        for v in voters.iter().skip(client).step_by(CLIENTS) {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let a = h
                .send(ballot(v.sign_submission(ELECTION, seq, b"under load")))
                .await
                .unwrap();
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
            let r = verify_receipt(&receipt(&a), &vkey).unwrap();
            out.lock().unwrap().push((Instant::now(), r));
        }
    }
}

/// Runs `urna audit` against the server at `addr`, bounded in time; returns its exit code
/// and stdout.
fn audit(dir: &Path, addr: SocketAddr, cert: &Path, vkey: &Path) -> (Option<i32>, String) {
    let out = dir.join("audit.out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_urna"))
        .arg("audit")
        .arg("--vkey")
        .arg(vkey)
        .arg("--roll")
        .arg(dir.join("electorate/roll.txt"))
        .arg("--url")
        .arg(format!("https://{addr}/"))
        .arg("--ca")
        .arg(cert)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("urna audit did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_running_servers_storage_continues_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Enough ballots per voter for a few seconds of load.
    let config_a = e2e::write_config(d, VOTERS, "max_ballots_per_voter = 100000", &[]);
    // Small segments: the copy crosses many files (and takes long enough for checkpoints to
    // be signed while it runs, which is what the script's order is for).
    let mut text = std::fs::read_to_string(&config_a).unwrap();
    text.push_str("\n[log]\nsegment_max_bytes = 4096\n");
    std::fs::write(&config_a, text).unwrap();
    let a = Server::start(&config_a).await;
    let vkey = a.verifier_key.clone();
    let voters = Arc::new(e2e::voters(d));

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(cast_until(
                a.addr,
                a.cert.clone(),
                vkey.clone(),
                voters.clone(),
                c,
                stop.clone(),
                answered.clone(),
            ))
        })
        .collect();
    // Let the load build, then copy the storage of the live server.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "no load on the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copy = d.join("copy");
    let copy_began = Instant::now();
    let backup = tokio::task::spawn_blocking({
        let (data, copy) = (d.join("data"), copy.clone());
        move || {
            Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/backup.sh"))
                .arg(data)
                .arg(copy)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let segments = std::fs::read_dir(copy.join("log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
        .count();
    assert!(segments > 3, "{segments} segments copied");
    let during_copy = answered.lock().unwrap().len();
    // The load goes on after the copy, then the first machine is lost: SIGKILL.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    a.kill();
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let before: Vec<&VerifiedReceipt> = answered
        .iter()
        .filter(|(at, _)| *at < copy_began)
        .map(|(_, r)| r)
        .collect();
    assert!(
        before.len() >= 200,
        "{} receipts before the copy",
        before.len()
    );
    assert!(
        answered.len() > during_copy,
        "ballots were still answered after the copy"
    );

    // The restore: the copy as storage.dir of a second server, on the same roll.
    let text = std::fs::read_to_string(&config_a).unwrap();
    let data = format!("dir = \"{}\"", d.join("data").display());
    assert!(text.contains(&data));
    let config_b = d.join("restored.toml");
    std::fs::write(
        &config_b,
        text.replace(&data, &format!("dir = \"{}\"", copy.display())),
    )
    .unwrap();
    let b = Server::start(&config_b).await;
    assert_eq!(b.verifier_key, vkey, "the copy signs with the same key");

    // The restored log is a prefix of the lost one: every receipt answered before the copy
    // began is in it, entry for entry, and its tree extends the checkpoint of each.
    let mut h = b.h1().await;
    let (cp, _) = checkpoint(&mut h, &vkey).await;
    let all = entries(&mut h, cp.size).await;
    let leaves: Vec<[u8; 32]> = all.iter().map(|e| leaf_hash(e)).collect();
    assert_eq!(common::mth(&leaves), cp.root);
    for r in &before {
        assert!(r.index < cp.size, "entry {} lost by the copy", r.index);
        assert_eq!(all[r.index as usize], r.entry, "entry {}", r.index);
        let old = &r.checkpoint;
        assert_eq!(
            common::mth(&leaves[..old.size as usize]),
            old.root,
            "the restored tree extends the checkpoint of size {}",
            old.size
        );
    }
    // Any receipt whose index the copy holds (answered during the copy too) is in it.
    for (_, r) in &answered {
        if r.index < cp.size {
            assert_eq!(all[r.index as usize], r.entry, "entry {}", r.index);
        }
    }

    // The restored server takes more ballots, under the same key.
    let mut more = Vec::new();
    for v in voters.iter() {
        let a = h
            .send(ballot(v.sign_submission(
                ELECTION,
                1_000_000,
                b"after restore",
            )))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
        more.push(verify_receipt(&receipt(&a), &vkey).unwrap());
    }
    let (last, _) = checkpoint(&mut h, &vkey).await;
    assert_eq!(last.size, cp.size + u64::from(VOTERS));
    // Every receipt from before the copy still verifies against the restored log's latest
    // tree: fetched again, each proves its entry at its index.
    for r in before
        .iter()
        .copied()
        .step_by(17)
        .chain(more.iter().take(3))
    {
        let a = h
            .send(net::get(&format!("/v1/receipts/{}", r.index)))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK);
        let again = verify_receipt(&receipt(&a), &vkey).unwrap();
        assert_eq!(again.entry, r.entry);
        assert_eq!(again.checkpoint.size, last.size);
    }
    drop(h);

    // And the whole log, as an observer audits it.
    let (code, stdout) = audit(d, b.addr, &b.cert, &copy.join("log.vkey"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("OK: the log verifies"), "{stdout}");
    assert!(
        stdout.contains(&format!("tree size:         {}", last.size)),
        "{stdout}"
    );
    b.terminate();
}
