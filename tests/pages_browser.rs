//! The voter's pages, end to end: the real `urna serve` with `pages = "demo"`, driven by
//! headless Chromium through `tests/browser/driver.mjs` (Playwright), and the pages'
//! receipt checker held to the command line's verdicts on real and tampered receipts
//! (`tests/browser/core.mjs`, Node only).
//!
//! They need Node (>= 20), Chromium and `npm ci --prefix tests/browser`. Without them each
//! test prints a loud note and passes, unless `URNA_REQUIRE_BROWSER=1` (set by `.ci/run`,
//! which installs them), when a missing tool fails the test.

mod e2e;
mod net;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use http::StatusCode;
use rand::rngs::OsRng;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use urna::audit::proof::leaf_hash;
use urna::audit::receipt::{verify_receipt, ReceiptError};
use urna::ballot::{decode_entry, Entry};
use urna::log::Receipt;

/// Set to 1 by `.ci/run`: a missing Node, Chromium or Playwright then fails the test.
const REQUIRE: &str = "URNA_REQUIRE_BROWSER";

/// Bound on one run of a Node script: Chromium's start and every scenario's waits (each
/// wait is bounded at 30 s inside), on a loaded 2-core machine.
const NODE_LIMIT: Duration = Duration::from_secs(300);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `node`, if it is there and new enough for playwright-core.
fn node() -> Result<PathBuf, String> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is not on PATH ({e})"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("node {version:?} is older than 20"));
    }
    Ok(PathBuf::from("node"))
}

/// Chromium: `$CHROMIUM`, or Debian's.
fn chromium() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .collect();
    candidates
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| "no chromium (apt-get install chromium, or set CHROMIUM)".to_owned())
}

fn playwright() -> Result<(), String> {
    let installed = browser_dir()
        .join("node_modules/playwright-core/package.json")
        .exists();
    if installed {
        Ok(())
    } else {
        Err("playwright-core is not installed (npm ci --prefix tests/browser)".to_owned())
    }
}

/// Says loudly why a test does not run, or fails it when CI requires it to run.
fn unavailable(test: &str, why: &str) {
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("{test}: {why}, and {REQUIRE}=1 requires it");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing
    // tests, and this note must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n**********************************************************************\n\
         * SKIPPED {test}:\n\
         *   {why}.\n\
         * The voter's pages are NOT tested in a browser here. .ci/run installs\n\
         * what it needs; see README.md, \"Two commands on a fresh machine\".\n\
         **********************************************************************\n"
    );
}

/// Runs `node <script> <args>` in tests/browser, bounded by [`NODE_LIMIT`]; returns whether
/// it exited 0, and what it printed.
fn run_node(script: &str, args: &[&str], envs: &[(&str, String)]) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(browser_dir())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + NODE_LIMIT;
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    log.reopen().unwrap().read_to_string(&mut out).unwrap();
    if Instant::now() > deadline {
        out.push_str(&format!("\n(killed after {NODE_LIMIT:?})"));
    }
    (ok, out)
}

/// The variant of a `ReceiptError`, as `web/assets/receipt.js` names its kinds. Exhaustive:
/// a new variant must be taught to the browser's checker too.
fn kind(e: &ReceiptError) -> &'static str {
    match e {
        ReceiptError::Key(_) => "Key",
        ReceiptError::Entry => "Entry",
        ReceiptError::Proof(_) => "Proof",
        ReceiptError::IndexMismatch { .. } => "IndexMismatch",
        ReceiptError::Signature(_) => "Signature",
        ReceiptError::Checkpoint(_) => "Checkpoint",
        ReceiptError::Origin { .. } => "Origin",
        ReceiptError::Inclusion => "Inclusion",
    }
}

/// One case for core.mjs: the receipt as JSON text, the key, and what Rust says of it.
fn case(name: &str, receipt: &serde_json::Value, vkey: &str) -> serde_json::Value {
    let text = receipt.to_string();
    let parsed: Receipt = serde_json::from_str(&text).unwrap();
    match verify_receipt(&parsed, vkey) {
        Ok(v) => {
            json!({"name": name, "receipt": text, "vkey": vkey, "rust": "ok", "index": v.index})
        }
        Err(e) => {
            json!({"name": name, "receipt": text, "vkey": vkey, "rust": kind(&e), "message": e.to_string()})
        }
    }
}

/// A receipt `{index, entry, tlog_proof}` as JSON.
fn receipt_json(index: u64, entry_b64: &str, proof: &str) -> serde_json::Value {
    json!({"index": index, "entry": entry_b64, "tlog_proof": proof})
}

/// A checkpoint note with `text` as its body, signed by a fresh key named `name`:
/// (note, verifier key). For bodies the server never signs (another origin, a bad size).
fn signed_note(name: &str, text: &str) -> (String, String) {
    let (skey, vkey) = signed_note::generate_key(&mut OsRng, name);
    let signer = signed_note::StandardSigner::new(&skey).unwrap();
    let mut note = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    note.add_sigs(&[&signer]).unwrap();
    (String::from_utf8(note.to_bytes()).unwrap(), vkey)
}

/// Every way of breaking one real receipt that the checker must name, each judged by Rust.
fn tampered(base: &Receipt, vkey: &str, out: &mut Vec<serde_json::Value>) {
    let entry = B64.decode(&base.entry).unwrap();
    let proof = base.tlog_proof.as_str();
    let (head, note) = proof.split_once("\n\n").unwrap();
    let (body, sigs) = note.rsplit_once("\n\n").unwrap();
    let sig_line = sigs.lines().next().unwrap();
    let with_proof = |p: String| receipt_json(base.index, &base.entry, &p);
    let with_note = |n: String| with_proof(format!("{head}\n\n{n}"));
    let head_lines: Vec<&str> = head.lines().collect();
    assert!(head_lines.len() >= 4, "a receipt with a few proof hashes");
    let (name, rest) = vkey.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();

    let mut flipped = entry.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut cases: Vec<(&str, serde_json::Value, String)> = vec![
        (
            "entry changed",
            receipt_json(base.index, &B64.encode(&flipped), proof),
            vkey.into(),
        ),
        (
            "entry without padding",
            receipt_json(base.index, base.entry.trim_end_matches('='), proof),
            vkey.into(),
        ),
        (
            "entry with a newline",
            receipt_json(base.index, &format!("{}\n", base.entry), proof),
            vkey.into(),
        ),
        (
            "entry empty",
            receipt_json(base.index, "", proof),
            vkey.into(),
        ),
        (
            "index off by one",
            receipt_json(base.index + 1, &base.entry, proof),
            vkey.into(),
        ),
        (
            "proof version 2",
            with_proof(proof.replacen("tlog-proof@v1", "tlog-proof@v2", 1)),
            vkey.into(),
        ),
        (
            "proof index with a leading zero",
            with_proof(proof.replacen("\nindex ", "\nindex 0", 1)),
            vkey.into(),
        ),
        (
            "proof index past u64",
            with_proof(proof.replacen(
                &format!("\nindex {}\n", base.index),
                "\nindex 18446744073709551616\n",
                1,
            )),
            vkey.into(),
        ),
        (
            "proof without its blank line",
            with_proof(proof.replacen("\n\n", "\n", 1)),
            vkey.into(),
        ),
        (
            "proof hash dropped",
            with_proof(format!(
                "{}\n\n{note}",
                head_lines[..head_lines.len() - 1].join("\n")
            )),
            vkey.into(),
        ),
        (
            "proof hash added",
            with_proof(format!("{head}\n{}\n\n{note}", B64.encode([0u8; 32]))),
            vkey.into(),
        ),
        (
            "proof hash changed",
            with_proof(proof.replacen(head_lines[2], &B64.encode([7u8; 32]), 1)),
            vkey.into(),
        ),
        (
            "proof hash of 31 bytes",
            with_proof(proof.replacen(head_lines[2], &B64.encode([7u8; 31]), 1)),
            vkey.into(),
        ),
        (
            "proof hash not base64",
            with_proof(proof.replacen(head_lines[2], "!!!!", 1)),
            vkey.into(),
        ),
        (
            "65 proof hashes",
            with_proof(format!(
                "{head}{}\n\n{note}",
                format!("\n{}", B64.encode([1u8; 32])).repeat(65)
            )),
            vkey.into(),
        ),
        (
            "proof over 64 KiB",
            with_proof(format!("{head}\n\n{note}{}", "x".repeat(70_000))),
            vkey.into(),
        ),
        (
            "extra data",
            with_proof(proof.replacen("@v1\n", "@v1\nextra AAE=\n", 1)),
            vkey.into(),
        ),
        (
            "extra not base64",
            with_proof(proof.replacen("@v1\n", "@v1\nextra !!\n", 1)),
            vkey.into(),
        ),
        (
            "checkpoint size changed",
            with_note(note.replacen(
                &format!("\n{}\n", body.lines().nth(1).unwrap()),
                "\n99\n",
                1,
            )),
            vkey.into(),
        ),
        (
            "checkpoint root changed",
            with_note(note.replacen(body.lines().nth(2).unwrap(), &B64.encode([3u8; 32]), 1)),
            vkey.into(),
        ),
        (
            "checkpoint unsigned",
            with_note(format!("{body}\n\n")),
            vkey.into(),
        ),
        (
            "checkpoint with a tab",
            with_note(note.replacen('\n', "\t\n", 1)),
            vkey.into(),
        ),
        (
            "checkpoint signature line of 4 bytes",
            with_note(format!("{body}\n\n\u{2014} {name} AAAAAA==\n")),
            vkey.into(),
        ),
        (
            "checkpoint signature twice",
            with_note(format!("{note}{sig_line}\n")),
            vkey.into(),
        ),
        (
            "checkpoint cosigned by another key",
            with_note(format!(
                "{note}\u{2014} witness.example AAAAAAAAAAAAAAAAAAAA\n"
            )),
            vkey.into(),
        ),
        (
            "checkpoint with 101 signatures",
            with_note(format!(
                "{note}{}",
                "\u{2014} witness.example AAAAAAAAAAAAAAAAAAAA\n".repeat(100)
            )),
            vkey.into(),
        ),
    ];
    // A copy of the log's signature with one byte changed: refused first, ignored second.
    let sig_b64 = sig_line.rsplit_once(' ').unwrap().1;
    let mut sig = B64.decode(sig_b64).unwrap();
    sig[10] ^= 1;
    let bad_line = format!("\u{2014} {name} {}", B64.encode(&sig));
    cases.push((
        "bad signature before the good one",
        with_note(format!("{body}\n\n{bad_line}\n{sig_line}\n")),
        vkey.into(),
    ));
    cases.push((
        "bad signature after the good one",
        with_note(format!("{note}{bad_line}\n")),
        vkey.into(),
    ));
    // Keys.
    let other_same_name = urna::log::LogKey::generate(name).unwrap().1;
    let other_name = urna::log::LogKey::generate("urna.test/other").unwrap().1;
    let mut id_flipped = id.to_owned().into_bytes();
    id_flipped[0] = if id_flipped[0] == b'0' { b'1' } else { b'0' };
    let raw_key = B64.decode(key).unwrap();
    let mut alg2 = raw_key.clone();
    alg2[0] = 2;
    let alg2_id = {
        use sha2::Digest;
        let h = sha2::Sha256::new()
            .chain_update(format!("{name}\n"))
            .chain_update(&alg2)
            .finalize();
        format!("{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
    };
    for (label, k) in [
        (
            "another key of the same name",
            other_same_name.verifier_key().to_owned(),
        ),
        ("another log's key", other_name.verifier_key().to_owned()),
        ("an empty key", String::new()),
        ("a key without fields", "nope".to_owned()),
        (
            "a key with a wrong id",
            format!("{name}+{}+{key}", String::from_utf8(id_flipped).unwrap()),
        ),
        (
            "a key with an upper-case id",
            format!("{name}+{}+{key}", id.to_uppercase()),
        ),
        (
            "a key of another algorithm",
            format!("{name}+{alg2_id}+{}", B64.encode(&alg2)),
        ),
        (
            "a key cut short",
            format!("{name}+{id}+{}", &key[..key.len() - 4]),
        ),
        (
            "a key whose name has a space",
            format!("urna test+{id}+{key}"),
        ),
        (
            "a key whose name has a no-break space",
            format!("urna\u{a0}test+{id}+{key}"),
        ),
    ] {
        cases.push((label, receipt_json(base.index, &base.entry, proof), k));
    }
    for (label, receipt, k) in cases {
        out.push(case(label, &receipt, &k));
    }
}

/// Receipts for bodies the server never signs, each proving one entry in a tree of one.
fn crafted(out: &mut Vec<serde_json::Value>) {
    let entry = b"crafted entry";
    let root = B64.encode(leaf_hash(entry));
    let entry_b64 = B64.encode(entry);
    for (label, key_name, body, index) in [
        (
            "a one-entry tree",
            "urna.test/crafted",
            format!("urna.test/crafted\n1\n{root}\n"),
            0,
        ),
        (
            "an origin that is not the key's name",
            "urna.test/crafted",
            format!("urna.test/elsewhere\n1\n{root}\n"),
            0,
        ),
        (
            "a size with a leading zero",
            "urna.test/crafted",
            format!("urna.test/crafted\n01\n{root}\n"),
            0,
        ),
        (
            "no size",
            "urna.test/crafted",
            "urna.test/crafted\n".to_owned(),
            0,
        ),
        (
            "no origin",
            "urna.test/crafted",
            format!("\n1\n{root}\n"),
            0,
        ),
        (
            "a root of 31 bytes",
            "urna.test/crafted",
            format!("urna.test/crafted\n1\n{}\n", B64.encode([0u8; 31])),
            0,
        ),
        (
            "an index past the tree",
            "urna.test/crafted",
            format!("urna.test/crafted\n1\n{root}\n"),
            1,
        ),
        (
            "extension lines after the root",
            "urna.test/crafted",
            format!("urna.test/crafted\n1\n{root}\nsome extension\n"),
            0,
        ),
        (
            "a key name with U+FEFF (not whitespace to Rust)",
            "urna\u{feff}test",
            format!("urna\u{feff}test\n1\n{root}\n"),
            0,
        ),
    ] {
        let (note, vkey) = signed_note(key_name, &body);
        let proof = format!("c2sp.org/tlog-proof@v1\nindex {index}\n\n{note}");
        out.push(case(label, &receipt_json(index, &entry_b64, &proof), &vkey));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_receipt_checker_agrees_with_urna_verify_receipt_on_every_receipt() {
    const TEST: &str = "the_pages_receipt_checker_agrees_with_urna_verify_receipt_on_every_receipt";
    if let Err(why) = node() {
        return unavailable(TEST, &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 8, "", &[]);
    let server = e2e::Server::start(&config).await;
    let voters = e2e::voters(dir.path());
    let vkey = server.verifier_key.clone();
    let mut h = server.h1().await;
    let mut cases = Vec::new();
    // Receipts as the ballots' answers give them (each against its own batch's checkpoint)…
    for seq in [1, 2] {
        for (i, v) in voters.iter().enumerate().take(if seq == 1 { 8 } else { 5 }) {
            let body =
                v.sign_submission(e2e::ELECTION, seq, format!("ballot {i}/{seq}").as_bytes());
            let a = h.send(e2e::ballot(body)).await.unwrap();
            assert_eq!(a.status, StatusCode::CREATED);
            let r = e2e::receipt(&a);
            cases.push(case(
                &format!("answer to ballot {}", r.index),
                &serde_json::to_value(&r).unwrap(),
                &vkey,
            ));
        }
    }
    // …and every entry's against the latest one (13 entries: paths of 1 to 4 hashes).
    let mut latest = Vec::new();
    for index in 0..=13u64 {
        let a = h
            .send(net::get(&format!("/v1/receipts/{index}")))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK, "receipt {index}");
        let r = e2e::receipt(&a);
        cases.push(case(
            &format!("receipt {index} now"),
            &serde_json::to_value(&r).unwrap(),
            &vkey,
        ));
        latest.push(r);
    }
    tampered(&latest[5], &vkey, &mut cases);
    crafted(&mut cases);

    // The cases reach every verdict the command line can give, so agreeing means something.
    let verdicts: std::collections::BTreeSet<&str> =
        cases.iter().map(|c| c["rust"].as_str().unwrap()).collect();
    for k in [
        "ok",
        "Key",
        "Entry",
        "Proof",
        "IndexMismatch",
        "Signature",
        "Checkpoint",
        "Origin",
        "Inclusion",
    ] {
        assert!(
            verdicts.contains(k),
            "no case where Rust says {k}: {verdicts:?}"
        );
    }
    let file = dir.path().join("cases.json");
    std::fs::write(&file, json!({ "cases": cases }).to_string()).unwrap();
    let (ok, out) = run_node("core.mjs", &[file.to_str().unwrap()], &[]);
    println!("{out}");
    assert!(
        ok,
        "the pages' checker disagrees with urna verify-receipt:\n{out}"
    );
    assert!(out.contains(", 0 failed"), "{out}");
}

/// A page server for the two other origins of the CORS scenario: `http://localhost:<port>`
/// (listed in `cors_origins`) and `http://127.0.0.1:<port>` (not), one blank page for every
/// request, until the test ends.
async fn other_site() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                let read = async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                };
                let _ = tokio::time::timeout(net::WAIT, read).await;
                let page = "<!doctype html><title>another site</title><p>another site";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

/// `urna_rejections_total{layer, reason}` from the server's /metrics (0 when absent).
async fn rejections(h: &mut net::H1, layer: &str, reason: &str) -> u64 {
    let m = h.send(net::get("/metrics")).await.unwrap();
    let series = format!("urna_rejections_total{{layer=\"{layer}\",reason=\"{reason}\"}} ");
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_cast_and_verify_in_chromium_and_only_listed_origins_may_submit() {
    const TEST: &str = "voters_cast_and_verify_in_chromium_and_only_listed_origins_may_submit";
    let chromium = match node().and_then(|_| playwright()).and_then(|()| chromium()) {
        Ok(c) => c,
        Err(why) => return unavailable(TEST, &why),
    };
    let port = other_site().await;
    let allowed = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = e2e::write_config(dir.path(), 6, "", &[]);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[server]\n",
        &format!("[server]\npages = \"demo\"\ncors_origins = [\"{allowed}\"]\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let server = e2e::Server::start(&config).await;
    let base = format!("https://{}/", server.addr);
    let mut envs = vec![
        ("URNA_URL", base.clone()),
        ("URNA_VKEY", server.verifier_key.clone()),
        ("URNA_ELECTION", e2e::ELECTION.to_owned()),
        (
            "URNA_VOTERS",
            dir.path()
                .join("electorate/voters.jsonl")
                .display()
                .to_string(),
        ),
        ("URNA_ALLOWED_ORIGIN", allowed),
        ("URNA_DENIED_ORIGIN", format!("http://127.0.0.1:{port}")),
        ("CHROMIUM", chromium.display().to_string()),
        ("NODE_EXTRA_CA_CERTS", server.cert.display().to_string()),
    ];
    if let Ok(shots) = std::env::var("URNA_SCREENSHOTS") {
        envs.push(("URNA_SCREENSHOTS", shots));
    }
    let (ok, out) = run_node("driver.mjs", &[], &envs);
    println!("{out}");
    assert!(
        ok,
        "the browser scenarios failed:\n{out}\n{}",
        server.stderr_text()
    );

    // What the browser did, as the server saw it: five ballots logged (Ed25519 on /vote,
    // P-256 and its revote, the allowed origin's, and the other origin's sent directly),
    // each with a receipt that verifies here too.
    let mut h = server.h1().await;
    let (cp, _) = e2e::checkpoint(&mut h, &server.verifier_key).await;
    assert_eq!(cp.size, 6, "manifest + 5 ballots");
    for index in 1..=5u64 {
        let a = h
            .send(net::get(&format!("/v1/receipts/{index}")))
            .await
            .unwrap();
        let v = verify_receipt(&e2e::receipt(&a), &server.verifier_key).unwrap();
        let Entry::Ballot(b) = decode_entry(&v.entry).unwrap() else {
            panic!("entry {index} is not a ballot");
        };
        b.verify_signature()
            .expect("the browser's signature verifies");
        if index == 1 {
            assert_eq!(b.ballot.payload(), b"urna demo ballot: Option B");
        }
    }
    // The other origin's preflight was refused by the server (not only by the browser), and
    // http:// on the TLS port got its 400.
    assert!(rejections(&mut h, "l4", "cors_origin").await >= 1);
    assert!(rejections(&mut h, "l2", "plain_http").await >= 1);
}
