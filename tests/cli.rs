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
