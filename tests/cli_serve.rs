//! `urna serve` as an operator runs it: config errors name the key; a missing roll is an
//! error naming it; on first start with `demo_voters` the certificate, the log key and the
//! demo electorate are generated and their paths printed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn urna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_urna"))
}

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("urna.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n[election]\nid = \"demo-2026\"\nroll = \"{d}/roll.txt\"\n[storage]\ndir = \"{d}/data\"\n",
        d = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn serve_refuses_an_unknown_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "listen_plainn = \"127.0.0.1:0\"");
    let out = urna()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_plainn"), "{err}");
}

#[test]
fn serve_without_a_roll_or_demo_voters_fails_naming_the_roll() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let out = urna()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let roll = dir.path().join("roll.txt");
    assert!(err.contains(&roll.display().to_string()), "{err}");
    assert!(err.contains("demo_voters"), "{err}");
    assert!(!roll.exists());
}

#[test]
fn first_start_generates_cert_log_key_and_demo_electorate_and_says_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("urna.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[election]\nid = \"demo-2026\"\nroll = \"{d}/electorate/roll.txt\"\ndemo_voters = 6\n[storage]\ndir = \"{d}/data\"\n",
        d = dir.path().display()
    );
    std::fs::write(&path, text).unwrap();
    let mut child = urna()
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The startup lines end with the url; read them on a thread so the wait is bounded.
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let last = line.starts_with("url:");
            if tx.send(line).is_err() || last {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let stdout = lines.join("\n");

    let d = dir.path();
    let printed = |p: std::path::PathBuf| {
        assert!(p.exists(), "{} missing; {stdout}", p.display());
        assert!(stdout.contains(&p.display().to_string()), "{stdout}");
    };
    printed(d.join("data/tls/cert.pem"));
    printed(d.join("data/tls/key.pem"));
    printed(d.join("data/log.key"));
    printed(d.join("electorate/roll.txt"));
    printed(d.join("electorate/voters.jsonl"));
    assert!(stdout.contains("(6 voters) (generated now)"), "{stdout}");
    // The bound address, not the configured port 0.
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("url:"))
        .map(str::trim)
        .expect("url line");
    let addr: std::net::SocketAddr = url
        .strip_prefix("https://")
        .and_then(|a| a.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{url}"));
    assert_ne!(addr.port(), 0, "{stdout}");
    let roll = std::fs::read_to_string(d.join("electorate/roll.txt")).unwrap();
    let keys = std::fs::read_to_string(d.join("electorate/voters.jsonl")).unwrap();
    assert_eq!((roll.lines().count(), keys.lines().count()), (6, 6));
    // The printed verifier key is the log key's.
    let vkey = stdout
        .lines()
        .find_map(|l| l.strip_prefix("verifier key:"))
        .map(str::trim)
        .expect("verifier key line");
    assert!(vkey.starts_with("urna.localhost/demo-2026+"), "{vkey}");
    // Which curve backend verifies signatures, so an operator sees a build that lost it.
    let backend = urna::ballot::Ed25519Backend::detect().label();
    let line = format!("signatures:   ed25519 on the {backend} backend");
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
}
