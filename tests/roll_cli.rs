//! `urna roll generate` (the real binary) writes a roll the server loads and keys whose
//! ballots it accepts; `urna roll check` loads it as the server would.

use std::process::Command;
use std::sync::Arc;

use urna::ballot::{
    parse_submission, verify, Election, Limits, Precheck, RevotePolicy, Roll, VoterKeyRecord,
    VoterSecret, VoterStates,
};

#[test]
fn generated_electorate_votes_successfully() {
    let dir = tempfile::tempdir().unwrap();
    let roll = dir.path().join("roll.txt");
    let keys = dir.path().join("voters.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_urna"))
        .args([
            "roll", "generate", "--count", "9", "--alg", "mixed", "--roll",
        ])
        .arg(&roll)
        .arg("--keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = Arc::new(Roll::load(&roll).unwrap());
    assert_eq!(r.len(), 9);
    let states = VoterStates::new(
        r,
        Election::new("demo", RevotePolicy::Last, None, None).unwrap(),
    );
    let text = std::fs::read_to_string(&keys).unwrap();
    let mut algs = Vec::new();
    for line in text.lines() {
        let rec: VoterKeyRecord = serde_json::from_str(line).unwrap();
        algs.push(rec.alg.clone());
        let secret = VoterSecret::from_record(&rec).unwrap();
        let body = secret.sign_submission("demo", 1, b"my vote");
        let b = parse_submission(body.as_bytes(), &Limits::default()).unwrap();
        assert!(matches!(states.precheck(&b, 0), Ok(Precheck::Verify(_))));
        verify(b).unwrap();
    }
    assert_eq!(algs.len(), 9);
    assert!(algs.contains(&"ed25519".to_string()) && algs.contains(&"p256".to_string()));

    let check = Command::new(env!("CARGO_BIN_EXE_urna"))
        .args(["roll", "check", "--roll"])
        .arg(&roll)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("9 voters, sha256 "));

    // A broken roll is refused with its line number.
    std::fs::write(&roll, "# x\ned25519 nope\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_urna"))
        .args(["roll", "check", "--roll"])
        .arg(&roll)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
}
