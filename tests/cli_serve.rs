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
    printed(d.join("data/log.vkey"));
    // The banner points at the tour and at the voters' page, the url, printed last.
    assert!(
        stdout.contains("tour:         README.md, \"A tour, with the server running\""),
        "{stdout}"
    );
    assert!(lines.last().unwrap().starts_with("url:"), "{stdout}");
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

/// Starts `urna serve` on `config` with stderr to a file, waits for its url line, stops it,
/// and returns what it logged.
fn logged(config: &std::path::Path, dir: &std::path::Path) -> String {
    let err_path = dir.join("stderr.log");
    let mut child = urna()
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("url:") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    // The "serving" line follows the url: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while started && Instant::now() < deadline {
        let text = std::fs::read_to_string(&err_path).unwrap_or_default();
        if text.contains("serving") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&err_path).unwrap();
    assert!(started, "no url: {text}");
    text
}

#[test]
fn log_lines_written_to_a_file_carry_no_colour_and_json_fields_are_plain_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_plain = \"127.0.0.1:0\"\n{{format}}\n\
         [election]\nid = \"demo-2026\"\nroll = \"{d}/roll.txt\"\ndemo_voters = 2\n\
         [storage]\ndir = \"{d}/data\"\n",
        d = d.display()
    );
    let config = d.join("urna.toml");
    std::fs::write(&config, text.replace("{format}", "")).unwrap();
    let human = logged(&config, d);
    assert!(human.contains("serving"), "{human}");
    assert!(
        !human.contains('\x1b'),
        "colour escapes in a file: {human:?}"
    );
    assert!(!human.contains("Some("), "{human}");

    std::fs::write(&config, text.replace("{format}", "log_format = \"json\"")).unwrap();
    let json = logged(&config, d);
    let serving = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .find(|v| v["fields"]["message"] == "serving")
        .unwrap_or_else(|| panic!("no serving line: {json}"));
    for field in ["listen", "plain"] {
        let value = serving["fields"][field].as_str().unwrap_or_default();
        assert!(
            value.parse::<std::net::SocketAddr>().is_ok(),
            "{field} is not a plain address: {serving}"
        );
    }
}
