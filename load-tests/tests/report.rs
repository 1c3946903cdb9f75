//! `urna-sim run` as a security team runs it: the real `urna serve` binary on a fresh demo
//! election (port chosen by the server, certificate generated), the smoke scenario run by
//! the real `urna-sim` binary with `--json` and `--html`, then the report read back: the
//! voters' verdict, the closing audit, the time series, the server's counters and process
//! samples. Then the audit is shown to fail when it should: a receipt whose entry the log
//! does not hold, and a roll the log was not made for (exit 4). Loopback only, bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use urna_sim::audit::Opening;
use urna_sim::receipts::Logged;

/// How long the server may take to start.
const START: Duration = Duration::from_secs(60);

/// The `urna` binary of this build: beside the test binary's `deps/` folder (built by
/// `cargo test --workspace`, or `cargo build [--release] --bin urna`).
fn urna_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("urna");
    assert!(
        bin.exists(),
        "{} is not built: cargo build {}--bin urna (cargo test --workspace builds it)",
        bin.display(),
        if dir.ends_with("release") {
            "--release "
        } else {
            ""
        }
    );
    bin
}

/// `urna serve` as a child; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    cert: PathBuf,
    verifier_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `urna serve` on a demo election of `voters` in `dir`, shipped limits, a port of
/// its choosing, and waits for its startup lines.
fn serve(dir: &Path, voters: u32) -> Server {
    let config = dir.join("urna.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_ms = 2000\n\
             [election]\nid = \"demo-2026\"\nroll = \"{d}/roll.txt\"\ndemo_voters = {voters}\n\
             [storage]\ndir = \"{d}/data\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(urna_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START;
    let mut lines = Vec::new();
    // Bounded by the deadline.
    while !lines.iter().any(|l: &String| l.starts_with("url:")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!(
                "no url line within {START:?}: {lines:?}\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            ),
        }
    }
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
    };
    let url = field("url:");
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let cert = PathBuf::from(field("certificate:").trim_end_matches(" (generated now)"));
    Server {
        child,
        addr,
        cert,
        verifier_key: field("verifier key:"),
    }
}

/// `urna-sim run smoke.toml` against `s`, with `extra` arguments: exit code and stdout.
fn sim(s: &Server, dir: &Path, roll: &Path, extra: &[&str]) -> (i32, String) {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_urna-sim"))
        .arg("run")
        .arg(&scenario)
        .args(["--target", &s.addr, "--ca"])
        .arg(&s.cert)
        .arg("--voters")
        .arg(dir.join("voters.jsonl"))
        .arg("--roll")
        .arg(roll)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn smoke_run_passes_its_audit_and_reports_series_metrics_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = serve(d, 300);
    let pid = server.child.id().to_string();
    let (json, html) = (d.join("report.json"), d.join("report.html"));
    let (code, stdout) = sim(
        &server,
        d,
        &d.join("roll.txt"),
        &[
            "--seed",
            "4242",
            "--server-pid",
            &pid,
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    // Not a terminal: no progress lines, only the report.
    assert!(!stdout.contains('\r'), "progress drawn to a pipe");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["verdict"]["passed"], true, "{}", r["verdict"]);
    assert_eq!(r["meta"]["seed"], 4242);
    assert_eq!(r["meta"]["scenario_name"], "smoke");
    assert_eq!(r["meta"]["target"], server.addr.as_str());
    for at in ["started_at", "ended_at"] {
        let t = r["meta"][at].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{at}: {t}"
        );
    }

    // The audit walked the grown log and found every receipt in it, no hostile ballot.
    let a = &r["audit"];
    assert_eq!(a["passed"], true, "{a}");
    assert_eq!(a["consistent"], true);
    let (start, end) = (
        a["start_size"].as_u64().unwrap(),
        a["end_size"].as_u64().unwrap(),
    );
    assert!(start >= 1 && end > start, "{start} -> {end}");
    assert_eq!(a["entries_checked"].as_u64().unwrap(), end);
    let verified: u64 = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["arrivals"]["receipts_verified"].as_u64())
        .sum();
    assert!(verified > 0);
    assert_eq!(a["receipts_checked"].as_u64().unwrap(), verified);
    assert_eq!(a["receipts_missing"], 0);
    // Hostile ballots were sent and refused.
    let task = |name: &str| {
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no task {name}"))
            .clone()
    };
    assert!(task("bad signatures")["answers"].as_u64().unwrap() > 0);

    // A point a second, bounded by the run; the voters' seconds carry counts and a p99.
    let series = r["series"].as_array().unwrap();
    assert_eq!(series.len(), r["tasks"].as_array().unwrap().len());
    let voters = series.iter().find(|s| s["task"] == "voters").unwrap();
    let points = voters["points"].as_array().unwrap();
    assert!((8..=8 + 60).contains(&points.len()), "{}", points.len());
    let ok: u64 = points.iter().map(|p| p["ok"].as_u64().unwrap()).sum();
    assert_eq!(
        ok,
        task("voters")["statuses"]["201"].as_u64().unwrap_or(0)
            + task("voters")["statuses"]["200"].as_u64().unwrap_or(0)
    );
    assert!(points.iter().any(|p| p["legit_p99_ms"].as_f64().is_some()));
    let flood = series
        .iter()
        .find(|s| s["task"] == "bad signatures")
        .unwrap();
    assert!(flood["points"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["c4xx"].as_u64().unwrap() + p["c429"].as_u64().unwrap() > 0));

    // The server's own counters moved by what the run did.
    let m = &r["server_metrics"];
    assert!(m["error"].is_null(), "{m}");
    let deltas = m["counter_deltas"].as_object().unwrap();
    let ballots_201: f64 = deltas
        .iter()
        .filter(|(k, _)| {
            k.starts_with("urna_responses_total")
                && k.contains("route=\"ballots\"")
                && k.contains("status=\"201\"")
        })
        .map(|(_, v)| v.as_f64().unwrap())
        .sum();
    assert!(ballots_201 > 0.0, "{deltas:?}");
    let samples = r["server_process"]["samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    assert!(samples[0]["rss_bytes"].as_u64().unwrap() > 1 << 20);

    // The HTML stands alone, with its charts inline.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("PASS"));
    assert!(
        !page.contains("http://") || !page.contains("<script"),
        "no external script"
    );
    assert!(!page.contains("<script") && !page.contains("<link"));
    // ... and `urna-sim report` renders it again from the JSON.
    let again = d.join("again.html");
    let st = Command::new(env!("CARGO_BIN_EXE_urna-sim"))
        .args([
            "report",
            json.to_str().unwrap(),
            "--html",
            again.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(
        std::fs::read_to_string(&again).unwrap() == page,
        "urna-sim report renders another page than the run did"
    );

    // A receipt whose entry the log does not hold (other bytes at a real index) fails the
    // audit; the real one at that index passes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let roll = d.join("roll.txt");
    let (good, forged) = rt.block_on(async {
        let src = Arc::new(urna::audit::Source::Https(Box::new(
            urna::audit::HttpsSource::new(
                &format!("https://{addr}/"),
                Some(&server.cert),
                urna::audit::FetchLimits::default(),
            )
            .unwrap(),
        )));
        let opening = Opening::from_source(src.clone(), &server.verifier_key)
            .await
            .unwrap();
        let size = opening.checkpoint.size;
        let tree = opening.checkpoint.clone();
        let leaf = urna::audit::tiled::leaf_hashes(&src, size - 1, size, &tree)
            .await
            .unwrap()[0];
        let real = Logged {
            index: size - 1,
            leaf,
        };
        let good = opening.close(&roll, &[real], 0, 100_000).await;
        let opening = Opening::from_source(src, &server.verifier_key)
            .await
            .unwrap();
        let mut other = leaf;
        other[0] ^= 1;
        let forged = opening
            .close(
                &roll,
                &[
                    real,
                    Logged {
                        index: size - 1,
                        leaf: other,
                    },
                ],
                0,
                100_000,
            )
            .await;
        (good, forged)
    });
    assert!(good.passed, "{:?}", good.failures);
    assert!(!forged.passed);
    assert_eq!((forged.receipts_checked, forged.receipts_missing), (2, 1));
    assert!(
        forged.receipt_examples[0].contains("other bytes"),
        "{:?}",
        forged.receipt_examples
    );

    // A roll the log was not made for (one voter short): the log's manifest names another
    // roll, so the audit fails and the run exits 4 even though every voter got through.
    let short = d.join("short-roll.txt");
    let text = std::fs::read_to_string(&roll).unwrap();
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    std::fs::write(&short, body[1..].join("\n") + "\n").unwrap();
    let (code, stdout) = sim(&server, d, &short, &["--duration-s", "2"]);
    assert_eq!(code, 4, "{stdout}");
    assert!(stdout.contains("AUDIT FAIL"), "{stdout}");
}
