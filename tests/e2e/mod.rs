//! Helpers for the end-to-end tests of `urna serve`: the real binary on a loopback port, its
//! startup lines parsed, the demo voters' secret keys, and the read side (checkpoint, entry
//! bundles) fetched over TLS with the client in `tests/net`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use urna::audit::receipt::{verify_checkpoint, CheckpointBody};
use urna::ballot::{VoterKeyRecord, VoterSecret};
use urna::log::Receipt;

use crate::net::{Answer, H1};

/// Bound on a server's start (electorate, certificate, log recovery) and on its exit.
pub const START: Duration = Duration::from_secs(20);

/// The election every test server runs.
pub const ELECTION: &str = "e2e-2026";

/// Rate limits far above the tests' own traffic (every test client is 127.0.0.1).
const GENEROUS: &[(&str, &str)] = &[
    ("new_connections_per_source_per_s", "100000"),
    ("new_connections_burst", "100000"),
    ("ballots_per_source_per_s", "100000"),
    ("ballots_burst_per_source", "100000"),
    ("ballots_per_prefix_per_s", "100000"),
    ("ballots_burst_per_prefix", "100000"),
    ("reads_per_source_per_s", "100000"),
    ("reads_burst_per_source", "100000"),
    ("reads_per_prefix_per_s", "100000"),
    ("reads_burst_per_prefix", "100000"),
];

/// Writes `<dir>/urna.toml`: a demo election of `voters` voters on a port the server picks
/// (it prints the bound address), storage in
/// `<dir>/data`, the generous limits except where `limits` overrides them, and `election`
/// extra lines for `[election]`.
pub fn write_config(dir: &Path, voters: u32, election: &str, limits: &[(&str, &str)]) -> PathBuf {
    let mut lines: Vec<String> = GENEROUS
        .iter()
        .filter(|(k, _)| !limits.iter().any(|(o, _)| o == k))
        .chain(limits.iter())
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    lines.sort();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
shutdown_grace_ms = 3000

[limits]
{limits}

[election]
id = "{ELECTION}"
roll = "{roll}"
demo_voters = {voters}
{election}

[storage]
dir = "{data}"
"#,
        limits = lines.join("\n"),
        roll = dir.join("electorate/roll.txt").display(),
        data = dir.join("data").display(),
    );
    let path = dir.join("urna.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `urna serve` running as a child process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub verifier_key: String,
    /// What it printed at startup.
    pub stdout: Vec<String>,
    stderr: PathBuf,
}

impl Server {
    /// Starts `urna serve --config <config>` and waits until `/healthz` answers on the
    /// address it printed.
    pub async fn start(config: &Path) -> Server {
        Server::start_with(config, &[]).await
    }

    /// [`Server::start`] with more arguments to `urna serve` (e.g. `--allow-closed-window`).
    pub async fn start_with(config: &Path, args: &[&str]) -> Server {
        let dir = config.parent().unwrap();
        let stderr = dir.join(format!("stderr-{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_urna"))
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Ends at EOF, when the child exits.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START;
        let mut stdout = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("url:");
                    stdout.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "server did not print its url within {START:?}: {stdout:?}\n{}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    );
                }
            }
        }
        let field = |name: &str| {
            stdout
                .iter()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} line in {stdout:?}"))
        };
        let verifier_key = field("verifier key:");
        let cert = field("certificate:");
        let cert = PathBuf::from(cert.trim_end_matches(" (generated now)"));
        let url = field("url:");
        let addr: SocketAddr = url
            .strip_prefix("https://")
            .and_then(|a| a.strip_suffix('/'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("url {url:?} is not https://<addr>/"));
        assert_ne!(addr.port(), 0, "the bound port is printed");
        let mut server = Server {
            child,
            addr,
            cert,
            verifier_key,
            stdout,
            stderr,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited with {status}: {}", self.stderr_text());
            }
            if let Ok(tls) = crate::net::tls_connect(self.addr, &self.cert, &[b"http/1.1"]).await {
                let mut h = H1::over(tls).await;
                if let Ok(a) = h.send(crate::net::get("/healthz")).await {
                    if a.status == StatusCode::OK {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "server not healthy within {START:?}: {}",
            self.stderr_text()
        );
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A new HTTP/1.1 connection over TLS.
    pub async fn h1(&self) -> H1 {
        H1::connect(self.addr, &self.cert).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + START;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}: {}", self.stderr_text());
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to flush or sign anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo voters' secret keys, written beside the roll on first start.
pub fn voters(dir: &Path) -> Vec<VoterSecret> {
    let text = std::fs::read_to_string(dir.join("electorate/voters.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let r: VoterKeyRecord = serde_json::from_str(l).unwrap();
            VoterSecret::from_record(&r).unwrap()
        })
        .collect()
}

pub fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "localhost")
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// `POST /v1/ballots` with a JSON body.
pub fn ballot(body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    post("/v1/ballots", "application/json", body)
}

pub fn receipt(a: &Answer) -> Receipt {
    serde_json::from_slice(&a.body)
        .unwrap_or_else(|e| panic!("not a receipt ({e}): {}", String::from_utf8_lossy(&a.body)))
}

/// Asserts an error answer: its status and its stable code.
#[track_caller]
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status.as_u16(), a.error_code().as_str()),
        (status, code),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
}

/// `GET /log/checkpoint`, verified against the verifier key.
pub async fn checkpoint(h: &mut H1, vkey: &str) -> (CheckpointBody, Vec<u8>) {
    let a = h.send(crate::net::get("/log/checkpoint")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let body = verify_checkpoint(&a.body, vkey).expect("checkpoint signed by the log key");
    (body, a.body.to_vec())
}

/// The tlog-tiles index path of tile `n` (three-digit groups, `x` before all but the last).
pub fn tile_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Every entry of a tree of `size` leaves, from the entry bundles under `/log/tile/entries/`.
pub async fn entries(h: &mut H1, size: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(size as usize);
    let mut n = 0;
    while n * 256 < size {
        let width = (size - n * 256).min(256);
        let mut path = format!("/log/tile/entries/{}", tile_index(n));
        if width < 256 {
            path.push_str(&format!(".p/{width}"));
        }
        let a = h.send(crate::net::get(&path)).await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{path}");
        // Full bundles never change; partial ones grow.
        let cache = a.header("cache-control").unwrap_or_default();
        assert_eq!(cache.contains("immutable"), width == 256, "{path}: {cache}");
        let bundle = parse_bundle(&a.body);
        assert_eq!(bundle.len() as u64, width, "{path}");
        out.extend(bundle);
        n += 1;
    }
    out
}

/// An entry bundle: big-endian u16 length, then the entry, repeated.
pub fn parse_bundle(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 2, "truncated bundle length");
        let len = u16::from_be_bytes([b[0], b[1]]) as usize;
        assert!(b.len() >= 2 + len, "truncated bundle entry");
        out.push(b[2..2 + len].to_vec());
        b = &b[2 + len..];
    }
    out
}
