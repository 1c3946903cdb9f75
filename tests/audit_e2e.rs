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
async fn a_bundles_ahead_past_the_cap_is_clamped_said_and_audits_the_same() {
    // Memory grows with the bundles in flight (docs/AUDITING.md), so a huge
    // `--bundles-ahead` must neither be obeyed nor change the result.
    let (e, mirror) = mirrored().await;
    let plain = e.audit_dir(&mirror, &["--json"]);
    let huge = e.audit_dir(&mirror, &["--json", "--bundles-ahead", "1000000"]);
    assert_eq!(huge.code, 0, "{}\n{}", huge.stdout, huge.stderr);
    assert!(
        huge.stderr.contains("--bundles-ahead 1000000: using 64"),
        "{}",
        huge.stderr
    );
    assert!(
        !plain.stderr.contains("--bundles-ahead"),
        "{}",
        plain.stderr
    );
    assert_eq!(plain.json(), huge.json());
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
    // Not the voter's signature: the leaf hash the log committed to in its tile.
    assert!(
        msg.starts_with("entry 258: its leaf hash is not hash 2 of tile/0/001.p/8"),
        "{msg}"
    );
    let j = run.json();
    assert_eq!(
        j["violation_counts"],
        serde_json::json!({"entry_hash_mismatch": 1})
    );
    assert_eq!(j["violations"][0]["index"], 258);
    assert_eq!(j["violations"][0]["kind"], "entry_hash_mismatch");
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
    // Named by its index, not by its bundle.
    assert_fails(
        &e.audit_dir(&m, &[]),
        "entry 263: not in tile/entries/001.p/8, though tile/0/001.p/8 commits to its hash",
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
    let run = e.audit_dir(&m, &[]);
    assert_fails(
        &run,
        "checkpoint: key hash mismatch: the checkpoint is signed by",
    );
    assert!(
        run.stderr.contains("checkpoint_signature: 1"),
        "{}",
        run.stderr
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
    assert_fails(&run, "entry 0: the manifest names log key");
    assert!(
        run.stderr.contains("manifest_key_mismatch: 1"),
        "{}",
        run.stderr
    );
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

/// The entries of a mirror, in log order.
fn mirror_entries(mirror: &Path, size: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..size.div_ceil(256) {
        let w = (size - n * 256).min(256) as u32;
        let p = urna::log::tiles::Resource::Entries { index: n, width: w }.path();
        out.extend(e2e::parse_bundle(&std::fs::read(mirror.join(p)).unwrap()));
    }
    out
}

/// Writes `entries` as a complete mirror at `dir` (bundles, every hash tile, a checkpoint
/// signed by `key`): what an operator holding the log key publishes after rewriting history.
fn write_mirror(dir: &Path, key: &LogKey, entries: &[Vec<u8>]) {
    use urna::log::tiles::{push_bundle_entry, Resource};
    let mut store = urna::log::tree::HashStore::new();
    for e in entries {
        store.append(tlog_tiles::record_hash(e));
    }
    let size = entries.len() as u64;
    let write = |p: String, bytes: &[u8]| {
        let to = dir.join(p);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    };
    for level in 0u8..8 {
        let nodes = size >> (8 * u32::from(level));
        if nodes == 0 {
            break;
        }
        for index in 0..nodes.div_ceil(256) {
            let width = (nodes - index * 256).min(256) as u32;
            let tile = store.tile(level, index, width).unwrap();
            write(
                Resource::Tile {
                    level,
                    index,
                    width,
                }
                .path(),
                &tile,
            );
            if level == 0 {
                let mut bundle = Vec::new();
                let first = (index * 256) as usize;
                for e in &entries[first..first + width as usize] {
                    push_bundle_entry(&mut bundle, e);
                }
                write(Resource::Entries { index, width }.path(), &bundle);
            }
        }
    }
    let cp = sign_checkpoint(key, size, store.root(size).unwrap()).unwrap();
    write("checkpoint".into(), &cp.note);
}

/// A ballot entry signed by `v`, received at `received_ms`.
fn entry(v: &urna::ballot::VoterSecret, seq: u64, payload: &str, received_ms: u64) -> Vec<u8> {
    use urna::ballot::{encode_entry, parse_submission, verify, Limits};
    let json = v.sign_submission(ELECTION, seq, payload.as_bytes());
    let b = parse_submission(json.as_bytes(), &Limits::default()).unwrap();
    encode_entry(&verify(b).unwrap(), received_ms)
}

fn received_ms(entry: &[u8]) -> u64 {
    match urna::ballot::decode_entry(entry).unwrap() {
        urna::ballot::Entry::Ballot(lb) => lb.received_ms,
        urna::ballot::Entry::Manifest(_) => panic!("a manifest"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tampering_is_named_by_index_and_kind_in_one_run() {
    use urna::ballot::{decode_entry, Election as Rules, Entry, Manifest};
    let (e, mirror) = mirrored().await;
    let size = e.ballots + 1;
    let log = mirror_entries(&mirror, size);
    let voters = e2e::voters(e.dir.path());
    let key = LogKey::from_file(&e.dir.path().join("data/log.key")).unwrap();
    let Entry::Manifest(m) = decode_entry(&log[0]).unwrap() else {
        panic!("entry 0 is not the manifest")
    };
    // Rewritten history, re-signed with the log's own key so tiles and root agree:
    // a manifest naming another roll, whose window closes right after the real ballots.
    let close = log[1..].iter().map(|b| received_ms(b)).max().unwrap() + 1;
    let rules = Rules::new(
        ELECTION,
        m.election.revote(),
        m.election.opens_at_ms(),
        Some(close),
    )
    .unwrap();
    let mut forged = vec![Manifest {
        election: rules,
        roll_sha256: [9; 32],
        log_verifier_key: m.log_verifier_key.clone(),
    }
    .encode()
    .unwrap()];
    forged.extend_from_slice(&log[1..]);
    let in_time = close - 1;
    // A replay of the Ed25519 voter's seq-2 ballot, after their seq 3 (entries 261, 263).
    let mut stale = log[261].clone();
    stale[1..9].copy_from_slice(&in_time.to_be_bytes());
    forged.push(stale); // 264
    let stranger = urna::ballot::VoterSecret::ed25519_from_seed(&[77; 32]);
    forged.push(entry(&stranger, 1, "not on the roll", in_time)); // 265
    let mut bad_sig = entry(&voters[20], 2, "forged", in_time);
    let n = bad_sig.len();
    bad_sig[n - 40] ^= 1;
    forged.push(bad_sig); // 266
    for (k, v) in voters[30..60].iter().enumerate() {
        forged.push(entry(v, 2, "too late", close + k as u64)); // 267..=296
    }
    let m = e.dir.path().join("rewritten");
    write_mirror(&m, &key, &forged);

    // Then, under the signed tree: a payload byte of entry 100 changed, entry 150 dropped,
    // and the checkpoint's signature forged.
    let bundle_path = m.join("tile/entries/000");
    let mut entries = e2e::parse_bundle(&std::fs::read(&bundle_path).unwrap());
    let n = entries[100].len();
    entries[100][n - 65] ^= 1;
    entries.remove(150);
    let mut bundle = Vec::new();
    for x in &entries {
        urna::log::tiles::push_bundle_entry(&mut bundle, x);
    }
    std::fs::write(&bundle_path, bundle).unwrap();
    let cp_path = m.join("checkpoint");
    let cp = std::fs::read_to_string(&cp_path).unwrap();
    let (head, sig) = cp.trim_end().rsplit_once(' ').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = b64.decode(sig).unwrap();
    raw[20] ^= 1;
    std::fs::write(&cp_path, format!("{head} {}\n", b64.encode(raw))).unwrap();

    let run = e.audit_dir(&m, &["--json", "--max-per-kind", "5"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["complete"], true);
    assert_eq!(j["checked"], forged.len());
    assert_eq!(
        j["violation_counts"],
        serde_json::json!({
            "checkpoint_signature": 1,
            "roll_hash_mismatch": 1,
            "bad_signature": 2,
            "entry_hash_mismatch": 1,
            "missing_entry": 1,
            "stale_seq": 1,
            "not_on_roll": 1,
            "outside_window": 30,
        })
    );
    assert_eq!(j["violations_total"], 38);
    // Five of the 30 late ones kept in full.
    assert_eq!(j["violations_omitted"], 25);
    let mut got: Vec<(Option<u64>, String)> = j["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["index"].as_u64(), v["kind"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    let mut want: Vec<(Option<u64>, String)> = [
        (None, "checkpoint_signature"),
        (Some(0), "roll_hash_mismatch"),
        (Some(100), "bad_signature"),
        (Some(100), "entry_hash_mismatch"),
        (Some(150), "missing_entry"),
        (Some(264), "stale_seq"),
        (Some(265), "not_on_roll"),
        (Some(266), "bad_signature"),
    ]
    .into_iter()
    .map(|(i, k)| (i, k.to_owned()))
    .chain((267..272).map(|i| (Some(i), "outside_window".to_owned())))
    .collect();
    want.sort();
    assert_eq!(got, want);

    // The text report: grouped by kind with counts, the first N of each in full.
    let text = e.audit_dir(&m, &["--max-per-kind", "2"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stderr
            .starts_with("AUDIT FAILED: 38 violations of 8 kinds\n"),
        "{}",
        text.stderr
    );
    assert!(
        text.stderr
            .contains("outside_window: 30\n  entry 267: voter ed25519 ")
            || text
                .stderr
                .contains("outside_window: 30\n  entry 267: voter p256 "),
        "{}",
        text.stderr
    );
    assert!(text.stderr.contains("  … and 28 more\n"), "{}", text.stderr);
    assert!(
        text.stderr
            .contains("checkpoint: the signature by urna.localhost/e2e-2026+"),
        "{}",
        text.stderr
    );
    assert!(
        text.stdout.contains("checked:           297"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_log_is_the_auditors_mistake_not_the_logs() {
    let (e, mirror) = mirrored().await;
    let (_, other) = LogKey::generate("urna.example/another-election").unwrap();
    let run = audit(
        e.dir.path(),
        &[
            "--vkey",
            other.verifier_key(),
            "--roll",
            &e.roll(),
            "--dir",
            &path(&mirror),
        ],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("audit incomplete: checkpoint: the verifier key names log \"urna.example/another-election\"")
            && run.stderr.contains("key name mismatch, the key given is another log's"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tally_holds_each_voters_counted_ballot_sorted_with_its_hash_in_the_summary() {
    use sha2::Digest as _;
    let (e, mirror) = mirrored().await;
    let tally = e.dir.path().join("tally.jsonl");
    let run = e.audit_dir(&mirror, &["--json", "--tally", &path(&tally)]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let bytes = std::fs::read(&tally).unwrap();
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(run.json()["tally_sha256"], sha.as_str());
    // Nothing but the file is left beside it.
    let left: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("tally"))
        .collect();
    assert_eq!(left, ["tally.jsonl"]);

    let lines: Vec<serde_json::Value> = std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, e.distinct_voters);
    // Sorted by voter: algorithm name, then key bytes.
    use base64::Engine as _;
    let key = |l: &serde_json::Value| {
        let (alg, k) = l["voter"].as_str().unwrap().split_once(' ').unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k)
            .unwrap();
        (alg.to_owned(), raw)
    };
    assert!(lines.windows(2).all(|w| key(&w[0]) < key(&w[1])));
    // The revoters' last ballots count: the Ed25519 voter's seq 3 (entry 263), the P-256
    // voter's seq 2 (entry 262); every other voter's only ballot.
    let payload = |l: &serde_json::Value| {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(l["payload"].as_str().unwrap())
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    let revoted: Vec<_> = lines.iter().filter(|l| l["seq"] != 1).collect();
    assert_eq!(revoted.len(), 2);
    let mut seen: Vec<(u64, u64, String)> = revoted
        .iter()
        .map(|l| {
            (
                l["index"].as_u64().unwrap(),
                l["seq"].as_u64().unwrap(),
                payload(l),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (262, 2, "changed my mind 2".to_owned()),
            (263, 3, "changed my mind 3".to_owned())
        ]
    );
    assert!(lines.iter().all(|l| l["received_ms"].as_u64().unwrap() > 0));
    assert!(lines
        .iter()
        .all(|l| l["index"].as_u64().unwrap() >= 1 && l["index"].as_u64().unwrap() <= 263));

    // A second observer, over HTTPS this time, gets the same file, byte for byte.
    let tally2 = e.dir.path().join("tally-2.jsonl");
    let (vkey, roll, url, ca) = (e.vkey_file(), e.roll(), e.url(), e.ca());
    let run2 = audit(
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
            "--tally",
            &path(&tally2),
        ],
    );
    assert_eq!(run2.code, 0, "{}\n{}", run2.stdout, run2.stderr);
    // Nothing was cast since: the same tree, so the same tally.
    assert!(
        run2.stdout.contains(&format!("tally sha256:      {sha}")),
        "{}",
        run2.stdout
    );
    assert_eq!(std::fs::read(&tally2).unwrap(), bytes);
}
