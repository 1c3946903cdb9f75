//! The command line as an operator and a voter use it: `urna keygen` writes a private key
//! and prints the verifier key; `urna verify-receipt` accepts a real receipt and refuses a
//! tampered one.

use base64::Engine;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use urna::log::Receipt;

fn urna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_urna"))
}

fn verify(vkey: &str, receipt: &Receipt) -> (bool, String) {
    let mut child = urna()
        .args(["verify-receipt", "--key", vkey, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(receipt).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn keygen_then_receipts_verify_and_tampered_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("log.key");
    let out = urna()
        .args(["keygen", "--name", "urna.test/cli"])
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(vkey.starts_with("urna.test/cli+"), "{vkey}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never overwrites a key.
    let again = urna()
        .args(["keygen", "--name", "urna.test/cli"])
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());

    let out = urna()
        .args(["log-writer", "--count", "5", "--concurrency", "2"])
        .arg("--dir")
        .arg(tmp.path().join("log"))
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let receipts: Vec<Receipt> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(receipts.len(), 5);
    let r = &receipts[0];
    let (ok, text) = verify(&vkey, r);
    assert!(ok && text.contains("OK"), "{text}");

    // Another entry under the same proof.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut t = r.clone();
    t.entry = b64.encode(b"someone else's ballot");
    assert!(!verify(&vkey, &t).0);
    // The same proof claimed for another index.
    let mut t = r.clone();
    t.index += 1;
    assert!(!verify(&vkey, &t).0);
    // A checkpoint with a changed root line.
    let mut t = r.clone();
    let (head, cp) = t.tlog_proof.split_once("\n\n").unwrap();
    let mut lines: Vec<String> = cp.split('\n').map(str::to_owned).collect();
    lines[2] = b64.encode([0u8; 32]);
    t.tlog_proof = format!("{head}\n\n{}", lines.join("\n"));
    assert!(!verify(&vkey, &t).0);
    // Another log's key.
    let other = tmp.path().join("other.key");
    let out = urna()
        .args(["keygen", "--name", "urna.test/cli"])
        .arg("--out")
        .arg(&other)
        .output()
        .unwrap();
    let other_vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!verify(&other_vkey, r).0);
}

#[test]
fn bare_urna_prints_the_help_on_stdout_and_exits_0() {
    let out = urna().output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Usage: urna"), "{stdout}");
    assert!(stdout.contains("serve"), "{stdout}");
    assert!(out.stderr.is_empty());
    // A wrong argument is still a usage error.
    let out = urna().arg("serv").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `urna args` with RUST_BACKTRACE=1 and returns its stderr, which must be one
/// `error:` report: no "Caused by:" block, no backtrace, no part said twice.
fn one_error(args: &[&std::ffi::OsStr]) -> String {
    let out = urna()
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    for noise in ["Caused by", "backtrace", "Error:", "\x1b["] {
        assert!(!err.contains(noise), "{noise:?} in {err}");
    }
    let first = err.lines().next().unwrap();
    let parts: Vec<&str> = first.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} said twice: {first}");
    }
    err
}

#[test]
fn errors_are_said_once_without_a_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    // A config typo: the file and the key, in a few lines.
    let config = tmp.path().join("urna.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_plainn = 1\n[election]\nid = \"x\"\nroll = \"r\"\n[storage]\ndir = \"d\"\n",
    )
    .unwrap();
    let err = one_error(&["serve".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert!(
        err.starts_with(&format!("error: invalid config {}: ", config.display())),
        "{err}"
    );
    assert!(err.contains("listen_plainn"), "{err}");
    assert!(err.lines().count() <= 6, "{err}");
    // A missing config file.
    let missing = tmp.path().join("nope.toml");
    let err = one_error(&["serve".as_ref(), "--config".as_ref(), missing.as_os_str()]);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // Errors with causes (thiserror messages that include their source).
    let roll = tmp.path().join("roll.txt");
    std::fs::write(&roll, "ed25519 not-a-key\n").unwrap();
    let err = one_error(&[
        "roll".as_ref(),
        "check".as_ref(),
        "--roll".as_ref(),
        roll.as_os_str(),
    ]);
    assert!(err.contains(&roll.display().to_string()), "{err}");
    let key = tmp.path().join("log.key");
    std::fs::write(&key, "x").unwrap();
    let err = one_error(&[
        "keygen".as_ref(),
        "--name".as_ref(),
        "urna.test/cli".as_ref(),
        "--out".as_ref(),
        key.as_os_str(),
    ]);
    assert!(err.contains("it must not exist"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
