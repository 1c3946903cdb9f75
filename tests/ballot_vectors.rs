//! Ballots signed by an independent implementation (tests/vectors/gen.py, pyca/cryptography)
//! are accepted, their signed message and logged entry match the Python bytes exactly, and
//! every single-field mutation is refused with the code the contract names.

use std::sync::Arc;

use serde::Deserialize;
use urna::ballot::{
    decode_entry, encode_entry, parse_submission, verify, verify_batch, verify_signature, Decision,
    Election, Entry, Limits, Manifest, PublicKey, RevotePolicy, Roll, VoterSecret, VoterStates,
};

#[derive(Deserialize)]
struct Vectors {
    election: ElectionV,
    now_ms: u64,
    roll: String,
    roll_sha256: String,
    cases: Vec<Case>,
    rfc8032: Vec<Rfc>,
    manifest: ManifestV,
}

#[derive(Deserialize)]
struct ManifestV {
    log_verifier_key: String,
    hex: String,
}

#[derive(Deserialize)]
struct ElectionV {
    id: String,
    revote: String,
    opens_at_ms: u64,
    closes_at_ms: u64,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    expect: String,
    body: String,
    signed_message: Option<String>,
    received_ms: Option<u64>,
    entry_hex: Option<String>,
}

#[derive(Deserialize)]
struct Rfc {
    secret: String,
    public: String,
    message: String,
    signature: String,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load() -> Vectors {
    serde_json::from_str(include_str!("vectors/ballots.json")).unwrap()
}

fn states(v: &Vectors) -> VoterStates {
    let roll = Roll::parse(v.roll.as_bytes(), 0).unwrap();
    assert_eq!(to_hex(&roll.sha256()), v.roll_sha256);
    assert_eq!(v.election.revote, "last");
    let e = Election::new(
        v.election.id.clone(),
        RevotePolicy::Last,
        Some(v.election.opens_at_ms),
        Some(v.election.closes_at_ms),
    )
    .unwrap();
    VoterStates::new(Arc::new(roll), e)
}

/// The server's order of checks, as L5 → L6 → L7 run them.
fn pipeline(states: &VoterStates, body: &str, now_ms: u64) -> Result<(), &'static str> {
    let b = parse_submission(body.as_bytes(), &Limits::default()).map_err(|e| e.code())?;
    states.precheck(&b, now_ms).map_err(|e| e.code())?;
    let v = verify(b).map_err(|e| e.code())?;
    match states.decide(&v, now_ms) {
        Decision::New(_) => Ok(()),
        Decision::Repeat(_) => Err("repeat"),
        Decision::Reject(e) => Err(e.code()),
    }
}

#[test]
fn independent_ballots_are_accepted_and_each_mutation_gets_its_code() {
    let v = load();
    let s = states(&v);
    assert!(v.cases.len() > 100);
    let mut valid = 0;
    for c in &v.cases {
        let got = match pipeline(&s, &c.body, v.now_ms) {
            Ok(()) => "ok",
            Err(code) => code,
        };
        assert_eq!(got, c.expect, "case {:?}", c.name);
        valid += usize::from(c.expect == "ok");
    }
    assert!(valid >= 6);
}

#[test]
fn signed_message_and_entry_bytes_match_the_independent_encoder() {
    let v = load();
    let mut checked = 0;
    for c in v.cases.iter().filter(|c| c.entry_hex.is_some()) {
        let b = parse_submission(c.body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            String::from_utf8(b.signed_message()).unwrap(),
            *c.signed_message.as_ref().unwrap(),
            "{}",
            c.name
        );
        let vb = verify(b).unwrap();
        let entry = encode_entry(&vb, c.received_ms.unwrap());
        assert_eq!(to_hex(&entry), *c.entry_hex.as_ref().unwrap(), "{}", c.name);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn batch_verification_gives_each_vector_its_own_answer() {
    let v = load();
    let s = states(&v);
    // Every case that parses and passes the precheck, verified in one batch, must get the
    // same answer as verified alone.
    let ballots: Vec<_> = v
        .cases
        .iter()
        .filter_map(|c| parse_submission(c.body.as_bytes(), &Limits::default()).ok())
        .filter(|b| s.precheck(b, v.now_ms).is_ok())
        .collect();
    assert!(ballots.len() > 30);
    let singles: Vec<_> = ballots.iter().map(|b| verify(b.clone()).is_ok()).collect();
    let batch: Vec<_> = verify_batch(ballots).iter().map(|r| r.is_ok()).collect();
    assert_eq!(singles, batch);
    assert!(singles.iter().any(|ok| !ok) && singles.iter().any(|ok| *ok));
}

#[test]
fn window_mutations_are_refused_before_the_signature() {
    let v = load();
    let s = states(&v);
    let good = &v.cases[0].body;
    assert_eq!(
        pipeline(&s, good, v.election.opens_at_ms - 1),
        Err("election_not_open")
    );
    assert_eq!(
        pipeline(&s, good, v.election.closes_at_ms),
        Err("election_closed")
    );
    assert_eq!(pipeline(&s, good, v.election.opens_at_ms), Ok(()));
}

#[test]
fn rfc8032_vectors_verify_and_sign_identically() {
    let v = load();
    assert_eq!(v.rfc8032.len(), 3);
    for r in &v.rfc8032 {
        let pk = PublicKey::Ed25519(hex(&r.public).try_into().unwrap());
        let sig: [u8; 64] = hex(&r.signature).try_into().unwrap();
        let msg = hex(&r.message);
        verify_signature(&pk, &msg, &sig).unwrap();
        let secret = VoterSecret::ed25519_from_seed(&hex(&r.secret).try_into().unwrap());
        assert_eq!(secret.public_key(), pk);
        assert_eq!(secret.sign(&msg), sig);
        let mut bad = msg.clone();
        bad.push(0);
        assert!(verify_signature(&pk, &bad, &sig).is_err());
    }
}

#[test]
fn manifest_bytes_match_the_independent_encoder() {
    let v = load();
    // The Python side built a real signed-note verifier key; the log's crate must accept it.
    signed_note::StandardVerifier::new(&v.manifest.log_verifier_key).unwrap();
    let s = states(&v);
    let m = Manifest {
        election: s.election().clone(),
        roll_sha256: s.roll().sha256(),
        log_verifier_key: v.manifest.log_verifier_key.clone(),
    };
    let bytes = m.encode().unwrap();
    assert_eq!(to_hex(&bytes), v.manifest.hex);
    assert_eq!(decode_entry(&bytes).unwrap(), Entry::Manifest(m));
}
