//! The simulator's bugs of issue 13 ("What was measured"), one test each: against stand-in
//! servers that misbehave on cue (plain HTTP on loopback) where the promise is about how the
//! simulator reads a server, and against the real server where it is about what it sends.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use urna_sim::Scenario;

/// A stand-in server: plain HTTP/1.1 on loopback, reading one request at a time (heads and
/// `Content-Length` bodies) and answering with `answer(n)` for the `n`-th request it has
/// seen (from 0, across connections); it closes a connection, without saying so, after
/// `per_connection` answers. Every loop is bounded by the test's run.
async fn stand_in(
    per_connection: usize,
    answer: impl Fn(u64) -> &'static str + Send + Sync + 'static,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    let seen = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (answer, seen) = (answer.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for _ in 0..per_connection {
                    let Some(()) = read_request(&mut sock, &mut buf).await else {
                        return;
                    };
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    if sock.write_all(answer(n).as_bytes()).await.is_err() {
                        return;
                    }
                }
                // Closed here: no `Connection: close` on the last answer.
            });
        }
    });
    addr
}

/// Reads one request (head, then a `Content-Length` body) off `sock`; `None` at EOF.
async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if buf.len() >= end + 4 + body {
                buf.drain(..end + 4 + body);
                return Some(());
            }
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A voters file of `n` Ed25519 keys (seeded: the same keys every time).
fn voters_file(dir: &Path, n: u8) -> std::path::PathBuf {
    let path = dir.join("voters.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let v = urna::ballot::keys::VoterSecret::ed25519_from_seed(&[i; 32]);
            serde_json::to_string(&v.to_record()).unwrap()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const CREATED: &str = "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
const BUSY: &str = "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 26\r\n\r\n{\"error\":\"rate_limited\"}\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_between_requests_is_counted_as_the_servers_not_as_an_io_error() {
    // The server ends each connection after 3 answers, the last without `Connection:
    // close` (as a request quota or an idle timeout may): the lanes must reconnect and
    // resend, with no I/O error.
    let addr = stand_in(3, |_| OK).await;
    let s: Scenario = toml::from_str(&format!(
        r#"
target = "{addr}"
plain = true
duration_s = 2
settle_ms = 0
election = "e"
audit = false
[[task]]
kind = "flood"
name = "reads"
connections = 2
sources = "127.0.0.1/32"
request = "get-election"
rate_per_s = 20
"#
    ))
    .unwrap();
    let report = urna_sim::run(&s).await.unwrap();
    let t = report.task("reads").unwrap();
    println!("{}", report.human());
    assert!(t.answers >= 36, "{t:?}");
    assert_eq!(t.status(200), t.answers, "{t:?}");
    assert_eq!(t.io_errors, 0, "{t:?}");
    assert!(t.failures.is_empty(), "{t:?}");
    // One close per 3 answers, each followed by one reconnect.
    assert!(t.closed_by_server >= t.answers / 3 - 2, "{t:?}");
    assert!(t.connects >= t.closed_by_server, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_wait_out_retry_after_and_are_accepted_on_the_next_try() {
    // Every other answer is a 429 with `Retry-After: 1`: each ballot is refused once, then
    // accepted after a wait of 0.5-1.5 s.
    let dir = tempfile::tempdir().unwrap();
    let voters = voters_file(dir.path(), 3);
    let addr = stand_in(100, |n| if n % 2 == 0 { BUSY } else { CREATED }).await;
    let scenario = |extra: &str| -> Scenario {
        toml::from_str(&format!(
            r#"
target = "{addr}"
plain = true
# A stand-in, not an Urna server: its "receipts" are not receipts.
verify_receipts = false
voters = "{}"
duration_s = 10
settle_ms = 0
election = "e"
audit = false
# The stand-in alternates its answers by count: no scrape may take one.
metrics = false
[[task]]
kind = "voters"
name = "voters"
connections = 1
sources = "127.0.0.1/32"
ballots = 3
{extra}
"#,
            voters.display()
        ))
        .unwrap()
    };
    let began = Instant::now();
    let report = urna_sim::run(&scenario("")).await.unwrap();
    println!("{}", report.human());
    let t = report.task("voters").unwrap();
    let a = t.arrivals.as_ref().unwrap();
    assert_eq!((a.arrived, a.accepted, a.retries), (3, 3, 3), "{a:?}");
    assert_eq!(a.accepted_pct, 100.0);
    assert_eq!(a.accepted_first_try_pct, 0.0);
    assert_eq!((t.status(429), t.status(201)), (3, 3), "{t:?}");
    // Three waits of at least half a second each: Retry-After was honoured.
    assert!(began.elapsed() >= Duration::from_millis(1500));
    // The ballot's latency counts from when it was due, waits included.
    assert!(a.latency_from_arrival.as_ref().unwrap().max_ms >= 500.0);

    // With no retry budget, a refusal is final and the ballot counted as failed.
    let report = urna_sim::run(&scenario("max_retries = 0")).await.unwrap();
    let a = report.task("voters").unwrap().arrivals.clone().unwrap();
    assert_eq!(a.arrived, 3, "{a:?}");
    assert!(a.failed >= 1, "{a:?}");
    assert_eq!(a.failures.get("status"), Some(&a.failed), "{a:?}");
    assert_eq!(a.final_statuses.get(&429), Some(&a.failed), "{a:?}");
    assert_eq!(a.accepted + a.failed, 3, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_ends_the_run_at_once_with_the_reason_and_exit_code_3() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // No duration, no ca, no voters in the file: the overrides complete it.
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            r#"
target = "127.0.0.1:{port}"
election = "e"
audit = false
[[task]]
kind = "voters"
name = "voters"
connections = 4
sources = "127.0.0.1/32"
ballots = 10
"#
        ),
    )
    .unwrap();
    let sim = |args: &[&str]| {
        let began = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_urna-sim"))
            .arg("run")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        (out, began.elapsed())
    };
    let ca = ca.display().to_string();
    let (out, took) = sim(&[
        "--duration-s",
        "60",
        "--ca",
        &ca,
        "--voters",
        "/nonexistent",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    // Not the 60 s the run asked for.
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Without the overrides the file does not check: exit 2, and the reason.
    let (out, _) = sim(&["--duration-s", "60"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ca is required"), "{stderr}");
    let (out, _) = sim(&["--ca", &ca, "--voters", "/nonexistent"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("duration_s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_voters_tasks_share_a_voters_file_and_handshake_kinds_report_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let served = common::serve(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[limits]
handshake_timeout_ms = 1000
ballots_per_source_per_s = 1000
ballots_burst_per_source = 1000
[election]
id = "regress-2026"
roll = "{d}/roll.txt"
demo_voters = 16
[storage]
dir = "{d}/data"
"#
    ))
    .await;
    let addr = served.addr;
    let before = served.logged();
    let s: Scenario = toml::from_str(&format!(
        r#"
target = "{addr}"
ca = "{d}/data/tls/cert.pem"
voters = "{d}/voters.jsonl"
election = "regress-2026"
audit = false
duration_s = 3
settle_ms = 100

# Two voters tasks wanting 24 ballots each from a file of 16 keys: 8 keys each.
[[task]]
kind = "voters"
name = "a"
connections = 2
sources = "127.5.0.0/24"
rate_per_s = 12
ballots = 24

[[task]]
kind = "voters"
name = "b"
connections = 2
sources = "127.6.0.0/24"
rate_per_s = 12
ballots = 24

[[task]]
kind = "tls-churn"
name = "churn"
connections = 2
sources = "127.7.0.0/24"

[[task]]
kind = "handshake-stall"
name = "stall"
connections = 4
sources = "127.8.0.0/24"
mode = "never-finishes"
"#
    ))
    .unwrap();
    let report = urna_sim::run(&s).await.unwrap();
    println!("{}", report.human());
    for name in ["a", "b"] {
        let t = report.task(name).unwrap();
        assert_eq!(t.status(201), 24, "{t:?}");
        let a = t.arrivals.as_ref().unwrap();
        assert_eq!(a.accepted, 24, "{t:?}");
        // Every receipt checked offline with the log's key: signed, included, ours.
        assert_eq!(a.receipts_verified, 24, "{a:?}");
        assert!(a.receipt_faults.is_empty(), "{a:?}");
    }
    assert_eq!(served.logged() - before, 48);

    // tls-churn: handshake times are handshake times, not answer latency.
    let churn = report.task("churn").unwrap();
    assert!(churn.ok_latency.is_none(), "{churn:?}");
    let hs = churn.handshakes.as_ref().unwrap();
    assert!(hs.completed > 0 && hs.handshake_time.is_some(), "{hs:?}");
    let human = report.human();
    let churn_lines: Vec<&str> = human
        .lines()
        .skip_while(|l| !l.starts_with("churn"))
        .take_while(|l| !l.starts_with("stall"))
        .collect();
    assert!(churn_lines.iter().any(|l| l.contains("handshake time")));
    assert!(!churn_lines.iter().any(|l| l.contains("2xx latency")));

    // handshake-stall never-finishes: the server answered the ClientHello (its flight was
    // read), then cut the unfinished handshake at its timeout (1 s, in a 3 s run).
    let stall = report.task("stall").unwrap();
    assert!(stall.bytes_read > 0, "{stall:?}");
    assert!(stall.closed_by_server >= 4, "{stall:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_voters_fail_the_run_with_exit_1_unless_expect_allows_them() {
    // Every other answer is a 429, and the voters may not retry: half their ballots are
    // refused for good. A run with 66 of 100 legitimate ballots refused used to exit 0.
    let dir = tempfile::tempdir().unwrap();
    let voters = voters_file(dir.path(), 4);
    let addr = stand_in(100, |n| if n % 2 == 0 { BUSY } else { CREATED }).await;
    let file = dir.path().join("s.toml");
    let write = |expect: &str| {
        std::fs::write(
            &file,
            format!(
                r#"
target = "{addr}"
plain = true
verify_receipts = false
voters = "{}"
duration_s = 5
settle_ms = 0
election = "e"
audit = false
{expect}
[[task]]
kind = "voters"
name = "voters"
connections = 1
sources = "127.0.0.1/32"
ballots = 4
max_retries = 0
"#,
                voters.display()
            ),
        )
        .unwrap()
    };
    let sim = || async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_urna-sim"))
            .arg("run")
            .arg(&file)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    write("");
    let (code, stdout) = sim().await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL: task voters: 50.0% of voters accepted"),
        "{stdout}"
    );
    // The scenario may say what it tolerates: then the same outcome passes.
    write("[expect]\nmin_accepted_pct = 50");
    let (code, stdout) = sim().await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    // ... but not a first-try bound it misses.
    write("[expect]\nmin_accepted_pct = 50\nmin_first_try_pct = 75");
    let (code, stdout) = sim().await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("first try"), "{stdout}");
}
