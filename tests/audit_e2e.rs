//! `urna audit` end to end: a real `urna serve` on loopback takes ballots of both algorithms,
//! with revotes, over TLS; the real `urna audit` binary verifies its whole log over HTTPS and
//! from the mirror it saved; and every way a mirror can be wrong (a changed byte, a missing
//! or short file, a checkpoint from another key, a fork from an earlier checkpoint) fails
//! with exit 1 and a message naming what failed.

mod common;
mod e2e;
mod net;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{ballot, Server, ELECTION};
use http::StatusCode;
use urna::ballot::Alg;
use urna::log::note::sign_checkpoint;
use urna::log::{Hash, LogKey};

/// Bound on one run of `urna audit`.
const AUDIT_WAIT: Duration = Duration::from_secs(60);

/// Voters in the test election: more than 256, so the log has a full entry bundle, a
/// partial one and a level-1 tile.
const VOTERS: u32 = 260;

/// What one run of `urna audit` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    /// `--json`'s failure: whether the log is at fault, and the message.
    fn json_failure(&self) -> (bool, String) {
        let j = self.json();
        assert_eq!(j["ok"], false, "{j}");
        let fault = j["log_fault"].as_bool().unwrap_or_else(|| panic!("{j}"));
        let msg = j["error"].as_str().unwrap_or_else(|| panic!("{j}"));
        (fault, msg.to_owned())
    }
}

/// Runs `urna audit <args>` to completion (bounded by [`AUDIT_WAIT`]).
fn audit(work: &Path, args: &[&str]) -> Run {
    let out = work.join(format!("audit-{}.out", rand_suffix()));
    let err = out.with_extension("err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_urna"))
        .arg("audit")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + AUDIT_WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("urna audit {args:?} did not finish within {AUDIT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn rand_suffix() -> u64 {
    rand::random()
}

/// An election that took ballots, and what an audit of it must find.
struct Election {
    dir: tempfile::TempDir,
    server: Server,
    /// A checkpoint fetched after the first ballots (a file an observer kept).
    earlier_checkpoint: PathBuf,
    earlier_size: u64,
    ballots: u64,
    ed25519_ballots: u64,
    p256_ballots: u64,
    distinct_voters: u64,
}

impl Election {
    fn roll(&self) -> String {
        path(&self.dir.path().join("electorate/roll.txt"))
    }
    fn vkey_file(&self) -> String {
        path(&self.dir.path().join("data/log.vkey"))
    }
    fn url(&self) -> String {
        format!("https://{}/", self.server.addr)
    }
    fn ca(&self) -> String {
        path(&self.server.cert)
    }
    /// `urna audit --dir <mirror>` with this election's key and roll, and `extra` args.
    fn audit_dir(&self, mirror: &Path, extra: &[&str]) -> Run {
        let (vkey, roll, mirror) = (self.vkey_file(), self.roll(), path(mirror));
        let mut args = vec!["--vkey", &vkey, "--roll", &roll, "--dir", &mirror];
        args.extend_from_slice(extra);
        audit(self.dir.path(), &args)
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Starts a server with [`VOTERS`] voters (revote `last`), has every voter vote once and
/// three vote again (two voters, one of each algorithm, once; one of them twice more),
/// keeping a checkpoint from after the first ten ballots.
async fn election() -> Election {
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), VOTERS, "revote = \"last\"", &[]);
    let server = Server::start(&config).await;
    let voters = e2e::voters(dir.path());
    assert_eq!(voters.len() as u32, VOTERS);
    let mut h = server.h1().await;
    let cast = |alg: Alg, counts: &mut (u64, u64)| match alg {
        Alg::Ed25519 => counts.0 += 1,
        Alg::P256 => counts.1 += 1,
    };
    let mut by_alg = (0u64, 0u64);
    let mut earlier = None;
    for (i, v) in voters.iter().enumerate() {
        let body = v.sign_submission(ELECTION, 1, format!("choice {}", i % 3).as_bytes());
        let a = h.send(ballot(body)).await.unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "voter {i}");
        cast(v.alg(), &mut by_alg);
        if i == 9 {
            earlier = Some(e2e::checkpoint(&mut h, &server.verifier_key).await);
        }
    }
    let ed = voters.iter().position(|v| v.alg() == Alg::Ed25519).unwrap();
    let p2 = voters.iter().position(|v| v.alg() == Alg::P256).unwrap();
    for (voter, seq) in [(ed, 2), (p2, 2), (ed, 3)] {
        let v = &voters[voter];
        let body = v.sign_submission(ELECTION, seq, format!("changed my mind {seq}").as_bytes());
        let a = h.send(ballot(body)).await.unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "revote of voter {voter}");
        cast(v.alg(), &mut by_alg);
    }
    let (earlier_body, earlier_note) = earlier.unwrap();
    let earlier_checkpoint = dir.path().join("earlier-checkpoint");
    std::fs::write(&earlier_checkpoint, earlier_note).unwrap();
    Election {
        dir,
        server,
        earlier_checkpoint,
        earlier_size: earlier_body.size,
        ballots: u64::from(VOTERS) + 3,
        ed25519_ballots: by_alg.0,
        p256_ballots: by_alg.1,
        distinct_voters: u64::from(VOTERS),
    }
}

/// An election, audited once over HTTPS with `--save-to`: the mirror it saved.
async fn mirrored() -> (Election, PathBuf) {
    let e = election().await;
    let mirror = e.dir.path().join("mirror");
    let (vkey, roll, url, ca, m) = (e.vkey_file(), e.roll(), e.url(), e.ca(), path(&mirror));
    let run = audit(
        e.dir.path(),
        &[
            "--vkey",
            &vkey,
            "--roll",
            &roll,
            "--url",
            &url,
            "--ca",
            &ca,
            "--save-to",
            &m,
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    (e, mirror)
}

/// A fresh copy of the mirror to damage.
fn copy_of(mirror: &Path, name: &str) -> PathBuf {
    let to = mirror.with_file_name(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(mirror)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}

/// Byte range of entry `k` inside an entry bundle.
fn entry_range(bundle: &[u8], k: usize) -> std::ops::Range<usize> {
    let mut at = 0;
    for i in 0..=k {
        let len = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
        if i == k {
            return at + 2..at + 2 + len;
        }
        at += 2 + len;
    }
    unreachable!("the loop returns at i == k")
}

#[track_caller]
fn assert_fails(run: &Run, needle: &str) {
    assert_eq!(run.code, 1, "exit code\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("AUDIT FAILED") && run.stderr.contains(needle),
        "expected {needle:?} in: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_of_a_live_server_passes_with_the_right_counts_and_extends_an_earlier_checkpoint() {
    let e = election().await;
    let (vkey_text, roll, url, ca) = (e.server.verifier_key.clone(), e.roll(), e.url(), e.ca());
    let earlier = path(&e.earlier_checkpoint);
    let mirror = path(&e.dir.path().join("mirror"));
    let run = audit(
        e.dir.path(),
        &[
            "--vkey",
            &vkey_text,
            "--roll",
            &roll,
            "--url",
            &url,
            "--ca",
            &ca,
            "--previous",
            &earlier,
            "--save-to",
            &mirror,
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let s = run.json();
    assert_eq!(s["ok"], true);
    assert_eq!(s["election"], ELECTION);
    assert_eq!(s["revote"], "last");
    assert_eq!(s["tree_size"], e.ballots + 1);
    assert_eq!(s["roll_voters"], u64::from(VOTERS));
    assert_eq!(s["ballots"], e.ballots);
    assert_eq!(s["ed25519_ballots"], e.ed25519_ballots);
    assert_eq!(s["p256_ballots"], e.p256_ballots);
    assert!(e.ed25519_ballots > 0 && e.p256_ballots > 0);
    assert_eq!(s["distinct_voters"], e.distinct_voters);
    assert_eq!(s["counted_ballots"], e.distinct_voters);
    assert_eq!(s["superseded_ballots"], 3);
    assert_eq!(s["extends_previous_size"], e.earlier_size);
    // The root is the one the server signed.
    let mut h = e.server.h1().await;
    let (cp, _) = e2e::checkpoint(&mut h, &e.server.verifier_key).await;
    assert_eq!(cp.size, e.ballots + 1);
    use base64::Engine as _;
    let root = base64::engine::general_purpose::STANDARD.encode(cp.root);
    assert_eq!(s["root"], root.as_str());

    // The saved mirror holds the C2SP paths the server serves, and audits the same offline.
    let m = Path::new(&mirror);
    for p in [
        "checkpoint",
        "tile/entries/000",
        "tile/entries/001.p/8",
        "tile/0/000",
        "tile/0/001.p/8",
        "tile/1/000.p/1",
    ] {
        assert!(m.join(p).is_file(), "{p} missing from the mirror");
    }
    let offline = e.audit_dir(m, &[]);
    assert_eq!(offline.code, 0, "{}\n{}", offline.stdout, offline.stderr);
    assert!(offline.stdout.starts_with("OK: the log verifies"));
    assert!(offline
        .stdout
        .contains(&format!("counted ballots:   {}", e.distinct_voters)));
    assert!(offline
        .stdout
        .contains(&format!("root:              {root}")));
    // A short audit says nothing more at the default pace (every 10 s); asked to, it says
    // how far it has got after each bundle, on stderr, leaving stdout to the result.
    assert!(
        !offline.stderr.contains("entries checked"),
        "{}",
        offline.stderr
    );
    let chatty = e.audit_dir(m, &["--progress-ms", "1"]);
    assert_eq!(chatty.code, 0, "{}\n{}", chatty.stdout, chatty.stderr);
    let first = format!("audit: 256 of {} entries checked (", e.ballots + 1);
    assert!(chatty.stderr.starts_with(&first), "{}", chatty.stderr);
    // The same summary (but for the first line's time).
    assert!(chatty
        .stdout
        .lines()
        .skip(1)
        .eq(offline.stdout.lines().skip(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_with_one_entry_byte_changed_fails_naming_the_entry_or_tile() {
    let (e, mirror) = mirrored().await;
    // A payload byte: the voter's signature no longer covers the entry.
    let m = copy_of(&mirror, "payload-changed");
    let bundle_path = m.join("tile/entries/000");
    let mut bundle = std::fs::read(&bundle_path).unwrap();
    let r = entry_range(&bundle, 5);
    bundle[r.end - 65] ^= 1;
    std::fs::write(&bundle_path, &bundle).unwrap();
    let run = e.audit_dir(&m, &[]);
    assert_fails(&run, "entry 5: the ");
    assert!(run.stderr.contains("signature of voter"), "{}", run.stderr);

    // The receive time is not signed by the voter, but it is in the leaf hash: the log's
    // own tile and root disagree with the changed entry.
    let m = copy_of(&mirror, "time-changed");
    let bundle_path = m.join("tile/entries/001.p/8");
    let mut bundle = std::fs::read(&bundle_path).unwrap();
    let r = entry_range(&bundle, 2);
    bundle[r.start + 8] ^= 1;
    std::fs::write(&bundle_path, &bundle).unwrap();
    let run = e.audit_dir(&m, &["--json"]);
    assert_eq!(run.code, 1);
    let (fault, msg) = run.json_failure();
    assert!(fault, "{msg}");
    assert!(
        msg.starts_with("tile/0/001.p/8: hash 2 (node 258 at height 0) differs"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_missing_entries_or_with_truncated_files_fails_naming_the_path() {
    let (e, mirror) = mirrored().await;
    let m = copy_of(&mirror, "bundle-gone");
    std::fs::remove_file(m.join("tile/entries/001.p/8")).unwrap();
    assert_fails(&e.audit_dir(&m, &[]), "tile/entries/001.p/8: not served by");

    let m = copy_of(&mirror, "entry-dropped");
    let p = m.join("tile/entries/001.p/8");
    let bundle = std::fs::read(&p).unwrap();
    let last = entry_range(&bundle, 7);
    std::fs::write(&p, &bundle[..last.start - 2]).unwrap();
    assert_fails(
        &e.audit_dir(&m, &[]),
        "tile/entries/001.p/8: holds 7 entries, expected 8",
    );

    let m = copy_of(&mirror, "tile-truncated");
    let p = m.join("tile/0/001.p/8");
    let tile = std::fs::read(&p).unwrap();
    std::fs::write(&p, &tile[..7 * 32]).unwrap();
    assert_fails(
        &e.audit_dir(&m, &[]),
        "tile/0/001.p/8: 224 bytes, expected 256 (8 hashes)",
    );

    let m = copy_of(&mirror, "level1-gone");
    std::fs::remove_file(m.join("tile/1/000.p/1")).unwrap();
    assert_fails(&e.audit_dir(&m, &[]), "tile/1/000.p/1: not served by");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_signed_by_another_key_fails() {
    let (e, mirror) = mirrored().await;
    let real = LogKey::from_file(&e.dir.path().join("data/log.key")).unwrap();
    let (_, other) = LogKey::generate(real.name()).unwrap();
    let mut h = e.server.h1().await;
    let (cp, _) = e2e::checkpoint(&mut h, &e.server.verifier_key).await;
    // The same tree, signed by a key of the same name that is not the log's.
    let forged = sign_checkpoint(&other, cp.size, Hash(cp.root)).unwrap();
    let m = copy_of(&mirror, "other-key");
    std::fs::write(m.join("checkpoint"), &forged.note).unwrap();
    assert_fails(
        &e.audit_dir(&m, &[]),
        "checkpoint: checkpoint signature does not verify",
    );
    // Audited with that other key instead, the manifest still names the real one.
    let run = audit(
        e.dir.path(),
        &[
            "--vkey",
            other.verifier_key(),
            "--roll",
            &e.roll(),
            "--dir",
            &path(&m),
        ],
    );
    assert_fails(&run, "manifest (entry 0): names log key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_checkpoint_the_tree_does_not_extend_fails() {
    let (e, mirror) = mirrored().await;
    // The log's own key signed a tree of 5 entries with another root: a fork (a ballot
    // changed or dropped between the two published roots).
    let key = LogKey::from_file(&e.dir.path().join("data/log.key")).unwrap();
    let fork = sign_checkpoint(&key, 5, Hash([7; 32])).unwrap();
    let fork_path = e.dir.path().join("fork-checkpoint");
    std::fs::write(&fork_path, &fork.note).unwrap();
    assert_fails(
        &e.audit_dir(&mirror, &["--previous", &path(&fork_path)]),
        "the tree does not extend the previous checkpoint: the root of its first 5 entries is",
    );
    // A previous checkpoint larger than the tree: the log shrank.
    let larger = sign_checkpoint(&key, e.ballots + 2, Hash([7; 32])).unwrap();
    std::fs::write(&fork_path, &larger.note).unwrap();
    assert_fails(
        &e.audit_dir(&mirror, &["--previous", &path(&fork_path)]),
        "the log shrank",
    );
    // The real earlier checkpoint is extended.
    let ok = e.audit_dir(&mirror, &["--previous", &path(&e.earlier_checkpoint)]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok
        .stdout
        .contains(&format!("extends previous:  size {}", e.earlier_size)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_makes_the_audit_incomplete_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let roll = dir.path().join("roll.txt");
    std::fs::write(&roll, "").unwrap();
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/");
    let run = audit(
        dir.path(),
        &[
            "--vkey",
            "urna.test/x+01020304+AQ==",
            "--roll",
            &path(&roll),
            "--url",
            &url,
            "--timeout-ms",
            "5000",
        ],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("audit incomplete: checkpoint: could not fetch"),
        "{}",
        run.stderr
    );
    // A mirror directory that is not there is the auditor's mistake too.
    let missing = path(&dir.path().join("no-such-mirror"));
    let run = audit(
        dir.path(),
        &[
            "--vkey",
            "urna.test/x+01020304+AQ==",
            "--roll",
            &path(&roll),
            "--dir",
            &missing,
        ],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not a directory"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_audit_waits_out_429_visibly_and_gives_up_after_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    // One read a second, no burst: the audit's 3 reads (checkpoint, bundle, tile) collide.
    let limits = [
        ("reads_per_source_per_s", "1"),
        ("reads_burst_per_source", "1"),
    ];
    let config = e2e::write_config(dir.path(), 3, "", &limits);
    let server = Server::start(&config).await;
    let mut h = server.h1().await;
    for v in &e2e::voters(dir.path()) {
        let a = h
            .send(ballot(v.sign_submission(ELECTION, 1, b"x")))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let (roll, vkey, ca) = (
        path(&dir.path().join("electorate/roll.txt")),
        path(&dir.path().join("data/log.vkey")),
        path(&server.cert),
    );
    let url = format!("https://{}/", server.addr);
    let args = |waits: &'static str| {
        [
            "--vkey",
            &vkey,
            "--roll",
            &roll,
            "--url",
            &url,
            "--ca",
            &ca,
            // Faster than the server allows, so the server's limit is what paces.
            "--max-requests-per-s",
            "100",
            "--max-rate-limit-waits",
            waits,
            "--json",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    fn refs(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    let patient = audit(dir.path(), &refs(&args("20")));
    assert_eq!(patient.code, 0, "{}\n{}", patient.stdout, patient.stderr);
    assert_eq!(patient.json()["ballots"], 3);
    assert!(
        patient
            .stderr
            .contains("the server is rate-limiting or busy; waiting 1 s"),
        "every wait is said: {}",
        patient.stderr
    );
    // Let the bucket refill, then spend it, so the next audit's first read is refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // On a connection of its own, so the token is spent whatever state the first is in.
    let spent = server.h1().await.send(net::get("/log/checkpoint")).await;
    assert_eq!(spent.unwrap().status, StatusCode::OK);
    let impatient = audit(dir.path(), &refs(&args("0")));
    assert_eq!(
        impatient.code, 3,
        "{}\n{}",
        impatient.stdout, impatient.stderr
    );
    let (fault, msg) = impatient.json_failure();
    assert!(!fault, "{msg}");
    assert!(msg.contains("still rate-limited after 0 waits"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_checkpoint_is_audited_from_the_full_tiles_when_its_partial_ones_are_gone() {
    let (e, mirror) = mirrored().await;
    // The mirror holds tile/entries/000 and tile/0/000 in full, not the partial ones of
    // the earlier size: the audit takes their first entries and hashes.
    let m = copy_of(&mirror, "older");
    std::fs::copy(&e.earlier_checkpoint, m.join("checkpoint")).unwrap();
    let partial = format!(".p/{}", e.earlier_size);
    assert!(!m.join(format!("tile/entries/000{partial}")).exists());
    let run = e.audit_dir(&m, &["--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let s = run.json();
    assert_eq!(s["tree_size"], e.earlier_size);
    assert_eq!(s["ballots"], e.earlier_size - 1);
    // Without the full ones either, the partial bundle is reported missing.
    std::fs::remove_file(m.join("tile/entries/000")).unwrap();
    assert_fails(
        &e.audit_dir(&m, &[]),
        &format!("tile/entries/000{partial}: not served by"),
    );
}
