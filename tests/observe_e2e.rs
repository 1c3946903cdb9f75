//! The observers' commands end to end, as an observer or a voter runs them: the real `urna`
//! binary against a real `urna serve` on loopback, and against logs forged with the real
//! log key (a dropped entry re-signed consistently, two entries swapped, an old checkpoint
//! served again), served over HTTPS by a small test double or from a directory.
//!
//! - `urna verify-receipt`: key as a file or text, `--ballot` of the voter's own ballot and
//!   of another's, `--url` against the live log and against a forged one, each error once.
//! - `urna mirror`: a verified copy that `urna audit --dir` passes, incremental, and left
//!   untouched when the server turns forged.
//! - `urna monitor`: follows a live server under ballots, its state survives SIGKILL, and it
//!   alarms on a forked server within one poll, a rollback, and a split view with a peer.

mod common;
mod e2e;
mod net;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::{ballot, Server, ELECTION};
use http::StatusCode;
use urna::audit::proof::leaf_hash;
use urna::audit::tree::TreeBuilder;
use urna::edge::{Backend, Reply};
use urna::log::note::sign_checkpoint;
use urna::log::tiles::{push_bundle_entry, Resource};
use urna::log::{Hash, LogKey, Receipt};

/// Bound on one run of a command.
const RUN_WAIT: Duration = Duration::from_secs(60);

/// What one run of `urna` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn spawn(work: &Path, args: &[&str]) -> (Child, PathBuf, PathBuf) {
    let n: u64 = rand::random();
    let out = work.join(format!("run-{n}.out"));
    let err = out.with_extension("err");
    let child = Command::new(env!("CARGO_BIN_EXE_urna"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    (child, out, err)
}

fn wait(mut child: Child, out: &Path, err: &Path, bound: Duration) -> Run {
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("urna did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

/// Runs `urna <args>` to completion, off the async runtime's threads.
async fn urna(work: &Path, args: &[&str]) -> Run {
    let work = work.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (c, o, e) = spawn(&work, &refs);
        wait(c, &o, &e, RUN_WAIT)
    })
    .await
    .unwrap()
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A live election: a real server, its voters, and the receipts and submissions so far.
struct Election {
    dir: tempfile::TempDir,
    server: Server,
    voters: Vec<urna::ballot::VoterSecret>,
    /// (receipt file, submission file) of each ballot cast, in order.
    cast: Vec<(PathBuf, PathBuf, Receipt)>,
}

impl Election {
    async fn start(voters: u32) -> Election {
        let dir = tempfile::tempdir().unwrap();
        let config = e2e::write_config(dir.path(), voters, "revote = \"last\"", &[]);
        let server = Server::start(&config).await;
        let voters = e2e::voters(dir.path());
        Election {
            dir,
            server,
            voters,
            cast: Vec::new(),
        }
    }
    fn work(&self) -> &Path {
        self.dir.path()
    }
    fn roll(&self) -> String {
        p(&self.dir.path().join("electorate/roll.txt"))
    }
    fn vkey(&self) -> String {
        p(&self.dir.path().join("data/log.vkey"))
    }
    fn key(&self) -> LogKey {
        LogKey::from_file(&self.dir.path().join("data/log.key")).unwrap()
    }
    fn url(&self) -> String {
        format!("https://{}/", self.server.addr)
    }
    fn ca(&self) -> String {
        p(&self.server.cert)
    }

    /// Voters `range` vote with `seq`; their receipts and submissions are kept as files.
    async fn vote(&mut self, range: std::ops::Range<usize>, seq: u64) {
        let mut h = self.server.h1().await;
        for i in range {
            let body = self.voters[i].sign_submission(
                ELECTION,
                seq,
                format!("choice {i}/{seq}").as_bytes(),
            );
            let a = h.send(ballot(body.clone())).await.unwrap();
            assert_eq!(a.status, StatusCode::CREATED, "voter {i}");
            let r = e2e::receipt(&a);
            let n = self.cast.len();
            let rf = self.work().join(format!("receipt-{n}.json"));
            let bf = self.work().join(format!("ballot-{n}.json"));
            std::fs::write(&rf, &a.body).unwrap();
            std::fs::write(&bf, body).unwrap();
            self.cast.push((rf, bf, r));
        }
    }

    /// Every entry of the live log, and its checkpoint note.
    async fn entries(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut h = self.server.h1().await;
        let (cp, note) = e2e::checkpoint(&mut h, &self.server.verifier_key).await;
        (e2e::entries(&mut h, cp.size).await, note)
    }
}

/// Writes a log of `entries` under `dir` in the tlog-tiles layout (bundles, full and partial
/// tiles) and a checkpoint signed with `key`: what a server holding the log key can serve.
fn write_log(dir: &Path, entries: &[Vec<u8>], key: &LogKey) {
    let put = |path: String, bytes: &[u8]| {
        let to = dir.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    };
    let mut tree = TreeBuilder::new();
    for (n, chunk) in entries.chunks(256).enumerate() {
        let mut bundle = Vec::new();
        for e in chunk {
            push_bundle_entry(&mut bundle, e);
            for t in tree.push(leaf_hash(e)) {
                put(t.path(), &t.bytes());
            }
        }
        let path = Resource::Entries {
            index: n as u64,
            width: chunk.len() as u32,
        }
        .path();
        put(path, &bundle);
    }
    for t in tree.partial_tiles() {
        put(t.path(), &t.bytes());
    }
    let cp = sign_checkpoint(key, tree.size(), Hash(tree.root())).unwrap();
    put("checkpoint".into(), &cp.note);
}

/// A test double of a server's read side: the real edge (TLS, limits) in front of a
/// backend that serves `/log/` from whichever directory it is pointed at, so a test can
/// turn an honest server into a forged one between two polls.
struct DirBackend {
    dir: Mutex<PathBuf>,
}

impl Backend for DirBackend {
    async fn submit(&self, _body: Bytes, _source: std::net::IpAddr, _ms: u64) -> Reply {
        Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "read-only double",
        )
    }
    fn election(&self) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "not_found", "none")
    }
    async fn receipt(&self, _index: u64) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "not_found", "none")
    }
    async fn log_read(&self, path: &str) -> Reply {
        let dir = self.dir.lock().unwrap().clone();
        match (Resource::parse(path), std::fs::read(dir.join(path))) {
            (Some(_), Ok(b)) => Reply::with_type(StatusCode::OK, "application/octet-stream", b),
            _ => Reply::error(StatusCode::NOT_FOUND, "not_found", "no such file"),
        }
    }
    fn ready(&self) -> bool {
        true
    }
    async fn shutdown(&self) {}
}

/// The double on loopback: its address and certificate; stops when the test ends.
async fn serve_dir(work: &Path, dir: &Path) -> (SocketAddr, PathBuf, Arc<DirBackend>) {
    let state = work.join(format!("double-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("roll.txt"), "").unwrap();
    let config = net::config(
        &state,
        "",
        "reads_per_source_per_s = 100000\nreads_burst_per_source = 100000\nreads_per_prefix_per_s = 100000\nreads_burst_per_prefix = 100000",
    );
    let backend = Arc::new(DirBackend {
        dir: Mutex::new(dir.to_owned()),
    });
    let server = urna::edge::Server::bind(&config, backend.clone())
        .await
        .expect("bind");
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = server.run(std::future::pending::<()>()).await;
    });
    (addr, config.tls_paths().0, backend)
}

#[track_caller]
fn assert_once(text: &str, needle: &str) {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "{needle:?} once in:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_receipt_takes_the_key_as_file_or_text_and_refuses_another_voters_ballot() {
    let mut e = Election::start(6).await;
    e.vote(0..6, 1).await;
    let work = e.work().to_owned();
    let (vkey, url, ca) = (e.vkey(), e.url(), e.ca());
    let key_text = std::fs::read_to_string(&vkey).unwrap().trim().to_owned();
    let (r3, b3, _) = e.cast[3].clone();
    let (r3, b3, b4) = (p(&r3), p(&b3), p(&e.cast[4].1));

    for key in [&vkey, &key_text] {
        for flag in ["--key", "--vkey"] {
            let run = urna(&work, &["verify-receipt", flag, key, &r3]).await;
            assert_eq!(run.code, 0, "{run}");
            assert!(run.stdout.starts_with("OK: entry 4 "), "{run}");
        }
    }
    let own = urna(
        &work,
        &["verify-receipt", "--key", &vkey, "--ballot", &b3, &r3],
    )
    .await;
    assert_eq!(own.code, 0, "{own}");
    assert!(own.stdout.contains("exactly the ballot"), "{own}");

    // Another voter's ballot: refused, naming the ballot and what differs, once.
    let other = urna(
        &work,
        &["verify-receipt", "--key", &vkey, "--ballot", &b4, &r3],
    )
    .await;
    assert_eq!(other.code, 1, "{other}");
    assert!(
        other.stderr.starts_with("ballot: the receipt is NOT for "),
        "{other}"
    );
    assert!(
        other.stderr.contains("voter, payload, sig differ"),
        "{other}"
    );
    assert_once(&other.stderr, "another ballot");
    assert_eq!(other.stderr.lines().count(), 1, "{other}");

    // The manifest's receipt is nobody's ballot.
    let mut h = e.server.h1().await;
    let a = h.send(net::get("/v1/receipts/0")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    let r0 = work.join("receipt-manifest.json");
    std::fs::write(&r0, &a.body).unwrap();
    let m = urna(
        &work,
        &["verify-receipt", "--key", &vkey, "--ballot", &b3, &p(&r0)],
    )
    .await;
    assert_eq!(m.code, 1, "{m}");
    assert!(
        m.stderr.contains("is the election manifest, not a ballot"),
        "{m}"
    );

    // A malformed key is the key's fault, said once.
    let bad = urna(&work, &["verify-receipt", "--key", "not-a-key", &r3]).await;
    assert_eq!(bad.code, 3, "{bad}");
    assert!(
        bad.stderr
            .starts_with("key: \"not-a-key\" is not a verifier key"),
        "{bad}"
    );
    assert_once(&bad.stderr, "malformed verifier key");
    // A valid key of another log: the receipt does not verify under it.
    let (_, other_key) = LogKey::generate("urna.test/other").unwrap();
    let run = urna(
        &work,
        &["verify-receipt", "--key", other_key.verifier_key(), &r3],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.starts_with("receipt does NOT verify: "), "{run}");
    // A file that is not a receipt.
    let not = urna(&work, &["verify-receipt", "--key", &vkey, &b3]).await;
    assert_eq!(not.code, 1, "{not}");
    assert!(not.stderr.starts_with("receipt: "), "{not}");

    // Against the live log, after more ballots: still there, and the log extends it.
    e.vote(0..2, 2).await;
    let live = urna(
        &work,
        &[
            "verify-receipt",
            "--key",
            &vkey,
            "--ballot",
            &b3,
            "--url",
            &url,
            "--ca",
            &ca,
            &r3,
        ],
    )
    .await;
    assert_eq!(live.code, 0, "{live}");
    assert!(
        live.stdout
            .contains("still holds entry 4 in its current tree of size 9"),
        "{live}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_is_verified_incremental_and_audited_offline_and_refuses_a_forged_log() {
    // More voters than one bundle holds: full and partial bundles, a level-1 tile.
    let mut e = Election::start(300).await;
    e.vote(0..100, 1).await;
    let work = e.work().to_owned();
    let (vkey, roll, url, ca) = (e.vkey(), e.roll(), e.url(), e.ca());
    let mirror = work.join("mirror");
    let m = p(&mirror);
    let run = urna(
        &work,
        &[
            "mirror", "--url", &url, "--ca", &ca, "--vkey", &vkey, "--dir", &m,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("now holds the log at size 101"),
        "{run}"
    );
    let audit = |extra: &'static str| {
        let (vkey, roll, m, work) = (vkey.clone(), roll.clone(), m.clone(), work.clone());
        async move {
            let mut args = vec!["audit", "--vkey", &vkey, "--roll", &roll, "--dir", &m];
            if !extra.is_empty() {
                args.push(extra);
            }
            urna(&work, &args).await
        }
    };
    let a = audit("--json").await;
    assert_eq!(a.code, 0, "{a}");
    assert!(a.stdout.contains("\"tree_size\":101"), "{a}");

    // More ballots: the next run keeps the full files, fetches the rest, and the audit
    // passes again; no partial file of the old size is left.
    e.vote(100..300, 1).await;
    let run = urna(
        &work,
        &[
            "mirror", "--url", &url, "--ca", &ca, "--vkey", &vkey, "--dir", &m,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("size 301") && run.stdout.contains("from size 101"),
        "{run}"
    );
    assert!(!mirror.join("tile/entries/000.p/101").exists());
    assert!(mirror.join("tile/entries/000").exists());
    assert!(mirror.join("tile/entries/001.p/45").exists());
    assert_eq!(audit("").await.code, 0);
    let again = urna(
        &work,
        &[
            "mirror", "--url", &url, "--ca", &ca, "--vkey", &vkey, "--dir", &m,
        ],
    )
    .await;
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("up to date at size 301"), "{again}");

    // The server turns forged: entry 50 dropped, tiles rebuilt, checkpoint re-signed with
    // the log key, and a ballot more so that it is larger than the mirror's.
    e.vote(0..2, 2).await;
    let (mut entries, _) = e.entries().await;
    entries.remove(50);
    let forged = work.join("forged");
    write_log(&forged, &entries, &e.key());
    let (addr, cert, _) = serve_dir(&work, &forged).await;
    let good_checkpoint = std::fs::read(mirror.join("checkpoint")).unwrap();
    let furl = format!("https://{addr}/");
    let refused = urna(
        &work,
        &[
            "mirror",
            "--url",
            &furl,
            "--ca",
            &p(&cert),
            "--vkey",
            &vkey,
            "--dir",
            &m,
        ],
    )
    .await;
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused
            .stderr
            .starts_with("MIRROR REFUSED: the tree does not extend the mirror's checkpoint"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(mirror.join("checkpoint")).unwrap(),
        good_checkpoint
    );
    assert_eq!(audit("").await.code, 0, "the good mirror is intact");

    // audit --save-to into the good mirror: the forged log passes a plain audit (it is
    // self-consistent), but the copy refuses it and the good checkpoint stays.
    let saved = urna(
        &work,
        &[
            "audit",
            "--vkey",
            &vkey,
            "--roll",
            &roll,
            "--url",
            &furl,
            "--ca",
            &p(&cert),
            "--save-to",
            &m,
        ],
    )
    .await;
    assert_eq!(saved.code, 1, "{saved}");
    assert!(saved.stderr.contains("MIRROR REFUSED"), "{saved}");
    assert_eq!(
        std::fs::read(mirror.join("checkpoint")).unwrap(),
        good_checkpoint
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_follows_a_live_log_under_ballots_and_its_state_survives_sigkill() {
    let mut e = Election::start(200).await;
    e.vote(0..10, 1).await;
    let work = e.work().to_owned();
    let (vkey, roll, url, ca) = (e.vkey(), e.roll(), e.url(), e.ca());
    let state = p(&work.join("monitor.state"));
    let once = |work: PathBuf, args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        urna(&work, &refs).await
    };
    let base: Vec<String> = [
        "monitor", "--url", &url, "--ca", &ca, "--vkey", &vkey, "--roll", &roll, "--state", &state,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut first = base.clone();
    first.push("--once".into());
    let run = once(work.clone(), first.clone()).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("checkpoint of size 11 verified"),
        "{run}"
    );

    // Polling every second while ballots arrive, killed with SIGKILL mid-way.
    let mut follow = base.clone();
    follow.extend(["--interval-s".to_owned(), "1".to_owned()]);
    let refs: Vec<&str> = follow.iter().map(String::as_str).collect();
    let (mut child, out, err) = spawn(&work, &refs);
    let started = Instant::now();
    let mut next = 10;
    // Bounded: 190 voters, ~6 s.
    while next < 200 && started.elapsed() < Duration::from_secs(20) {
        e.vote(next..next + 10, 1).await;
        next += 10;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = std::fs::read_to_string(&out).unwrap();
    let polls = lines.lines().filter(|l| l.contains("verified")).count();
    assert!(
        polls >= 3,
        "polls while ballots came in:\n{lines}\n{}",
        std::fs::read_to_string(&err).unwrap()
    );
    assert!(lines.contains("consistent with size"), "{lines}");
    assert!(!std::fs::read_to_string(&err).unwrap().contains("ALARM"));
    // The state is whole after SIGKILL, and the next run resumes from it: only the new
    // entries are checked.
    let state_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).expect("state file whole");
    let saved_note = state_json["checkpoint"].as_str().unwrap().to_owned();
    let saved_size: u64 = saved_note.lines().nth(1).unwrap().parse().unwrap();
    assert!(saved_size > 11, "{saved_note}");
    let run = once(work.clone(), first.clone()).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains(&format!(
            "consistent with size {saved_size}; {} new entries",
            201 - saved_size
        )),
        "{run}"
    );
    // A revote of an old voter and a repeat are checked against the resumed state.
    e.vote(0..1, 2).await;
    let run = once(work.clone(), first).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("size 202 verified"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_entry_re_signed_is_caught_by_monitor_within_one_poll_and_by_the_voters_receipt()
{
    let mut e = Election::start(40).await;
    e.vote(0..20, 1).await;
    let work = e.work().to_owned();
    let (vkey, roll) = (e.vkey(), e.roll());
    // The double serves an honest mirror first.
    let honest = work.join("honest");
    let (entries_20, _) = e.entries().await;
    let run = urna(
        &work,
        &[
            "mirror",
            "--url",
            &e.url(),
            "--ca",
            &e.ca(),
            "--vkey",
            &vkey,
            "--dir",
            &p(&honest),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let (addr, cert, double) = serve_dir(&work, &honest).await;
    let (furl, fca) = (format!("https://{addr}/"), p(&cert));
    let state = p(&work.join("monitor.state"));
    let args = [
        "monitor",
        "--url",
        &furl,
        "--ca",
        &fca,
        "--vkey",
        &vkey,
        "--roll",
        &roll,
        "--state",
        &state,
        "--interval-s",
        "1",
    ];
    let (child, out, err) = spawn(&work, &args);
    // Bounded: until the first poll is reported, at most 20 s.
    let t = Instant::now();
    while !std::fs::read_to_string(&out).unwrap().contains("verified") {
        assert!(t.elapsed() < Duration::from_secs(20), "no first poll");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The operator drops entry 7 (voter 6's ballot), appends the next ballots, rebuilds
    // the tiles and re-signs with the log key: a log that passes an audit on its own.
    e.vote(20..40, 1).await;
    let (mut entries, _) = e.entries().await;
    assert_eq!(entries[..21], entries_20[..]);
    entries.remove(7);
    let forged = work.join("forged");
    write_log(&forged, &entries, &e.key());
    let plain = urna(
        &work,
        &[
            "audit",
            "--vkey",
            &vkey,
            "--roll",
            &roll,
            "--dir",
            &p(&forged),
        ],
    )
    .await;
    assert_eq!(plain.code, 0, "the forged log is self-consistent: {plain}");
    let switched = Instant::now();
    *double.dir.lock().unwrap() = forged.clone();
    let run = tokio::task::spawn_blocking(move || wait(child, &out, &err, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        switched.elapsed() < Duration::from_secs(5),
        "caught within one poll: {:?}",
        switched.elapsed()
    );
    assert!(
        run.stderr.starts_with(
            "ALARM consistency: the tree of size 40 does not extend the checkpoint of size 21"
        ),
        "{run}"
    );

    // The voter who holds entry 7's receipt finds out against the live (forged) log.
    let (r6, b6, r) = e.cast[6].clone();
    assert_eq!(r.index, 7);
    let v = urna(
        &work,
        &[
            "verify-receipt",
            "--key",
            &vkey,
            "--ballot",
            &p(&b6),
            "--url",
            &furl,
            "--ca",
            &fca,
            &p(&r6),
        ],
    )
    .await;
    assert_eq!(v.code, 1, "{v}");
    assert!(
        v.stderr.starts_with(&format!(
            "log: https://{addr}/log/ does NOT hold this receipt: "
        )),
        "{v}"
    );
    assert!(
        v.stdout.contains("exactly the ballot"),
        "offline it still verifies: {v}"
    );
    // Against the honest server the same receipt is held.
    let ok = urna(
        &work,
        &[
            "verify-receipt",
            "--key",
            &vkey,
            "--url",
            &e.url(),
            "--ca",
            &e.ca(),
            &p(&r6),
        ],
    )
    .await;
    assert_eq!(ok.code, 0, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_alarms_on_a_rollback_and_on_a_split_view_with_a_peer() {
    let mut e = Election::start(30).await;
    e.vote(0..10, 1).await;
    let (_, early_note) = e.entries().await;
    e.vote(10..30, 1).await;
    let work = e.work().to_owned();
    let (vkey, roll) = (e.vkey(), e.roll());
    let (entries, _) = e.entries().await;
    assert_eq!(entries.len(), 31);
    let key = e.key();
    let honest = work.join("honest");
    write_log(&honest, &entries, &key);
    let monitor = |dir: &Path, state: &Path, peers: &[&Path]| {
        let mut args: Vec<String> = [
            "monitor",
            "--dir",
            &p(dir),
            "--vkey",
            &vkey,
            "--roll",
            &roll,
            "--state",
            &p(state),
            "--once",
        ]
        .map(str::to_owned)
        .to_vec();
        for peer in peers {
            args.push("--peer".into());
            args.push(p(peer));
        }
        let work = work.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            urna(&work, &refs).await
        }
    };
    let ours = work.join("ours.state");
    let run = monitor(&honest, &ours, &[]).await;
    assert_eq!(run.code, 0, "{run}");

    // Rollback: the log serves its older (genuinely signed) checkpoint again.
    let rolled = work.join("rolled");
    write_log(&rolled, &entries, &key);
    std::fs::write(rolled.join("checkpoint"), &early_note).unwrap();
    let run = monitor(&rolled, &ours, &[]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .starts_with("ALARM rollback: the checkpoint went back from size 31 to size 11"),
        "{run}"
    );

    // Split view, same size: another observer was shown entries 12 and 13 swapped (both
    // valid ballots of different voters, so that tree passes every check on its own).
    let mut swapped = entries.clone();
    swapped.swap(12, 13);
    let other = work.join("other");
    write_log(&other, &swapped, &key);
    let theirs = work.join("theirs.state");
    let run = monitor(&other, &theirs, &[]).await;
    assert_eq!(run.code, 0, "the other view is valid on its own: {run}");
    let run = monitor(&honest, &ours, &[theirs.as_path()]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("ALARM split-view: peer "), "{run}");
    assert!(
        run.stderr
            .contains("holds a checkpoint of size 31 that has another root"),
        "{run}"
    );

    // Split view, different sizes: the other observer holds a smaller tree that ours does
    // not extend (entry 12 dropped), as a plain checkpoint file.
    let mut dropped = entries[..20].to_vec();
    dropped.remove(12);
    let smaller = work.join("smaller");
    write_log(&smaller, &dropped, &key);
    let smaller_cp = smaller.join("checkpoint");
    let run = monitor(&honest, &ours, &[smaller_cp.as_path()]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("is not consistent with ours"), "{run}");

    // An honest peer, smaller (the early checkpoint) and equal: no alarm.
    let early = work.join("early-checkpoint");
    std::fs::write(&early, &early_note).unwrap();
    let run = monitor(&honest, &ours, &[early.as_path(), ours.as_path()]).await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout.matches("sees the same log").count(), 2, "{run}");
}
