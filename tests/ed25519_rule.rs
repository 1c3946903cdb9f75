//! The Ed25519 acceptance rule (ZIP-215 + roll key checks, docs/PROTOCOL.md §Signatures) at
//! its edges. The server (single and batched) and the auditor (`verify_signature` on a
//! decoded entry) must accept exactly the same signatures.

use std::sync::Arc;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use urna::ballot::roll::check_key;
use urna::ballot::wire::{b64, signed_message};
use urna::ballot::{
    parse_submission, verify, verify_batch, verify_signature, Alg, Ballot, Election, Limits,
    PublicKey, RevotePolicy, Roll, VoterSecret, VoterStates,
};

/// ℓ, the order of the prime-order subgroup, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Sign `m` with an arbitrary nonce point encoding `r_enc` whose discrete log (up to
/// torsion) is `r`: `S = r + k·a`.
fn sign_with_nonce(seed: &[u8; 32], r: Scalar, r_enc: [u8; 32], m: &[u8]) -> [u8; 64] {
    let a = secret_scalar(seed);
    let a_enc = (a * B).compress().to_bytes();
    let s = r + challenge(&r_enc, &a_enc, m) * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_enc);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = a[i] as u16 + b[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

fn single_and_batch(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> (bool, bool) {
    let single = verify_signature(key, msg, sig).is_ok();
    // Run the same signature through the batch path, next to a valid one so the batch
    // equation really is a batch.
    let ballot = ballot_for(key, msg, sig);
    let helper = VoterSecret::ed25519_from_seed(&[42; 32]);
    let other = parse_submission(
        helper.sign_submission("e", 1, b"x").as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let batch = verify_batch(vec![other, ballot.clone()]);
    assert!(batch[0].is_ok());
    let batched = batch[1].is_ok();
    assert_eq!(
        verify(ballot).is_ok(),
        single,
        "verify and verify_signature differ"
    );
    (single, batched)
}

/// A ballot whose signed message is `msg`: only possible if `msg` is one, so callers pass
/// messages built with `signed_message`.
fn ballot_for(key: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> Ballot {
    let text = std::str::from_utf8(msg).unwrap();
    let seq: u64 = text.lines().nth(3).unwrap()[4..].parse().unwrap();
    let json = format!(
        r#"{{"election":"e","alg":"ed25519","voter":"{}","seq":{seq},"payload":"","sig":"{}"}}"#,
        b64(key.as_bytes()),
        b64(sig)
    );
    let b = parse_submission(json.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(b.signed_message(), msg);
    b
}

fn message(key: &PublicKey, seq: u64) -> Vec<u8> {
    let empty: [u8; 32] = sha2::Sha256::digest(b"").into();
    signed_message("e", Alg::Ed25519, &b64(key.as_bytes()), seq, &empty)
}

#[test]
fn non_canonical_s_is_refused_single_and_batched() {
    let seed = [5u8; 32];
    let v = VoterSecret::ed25519_from_seed(&seed);
    let key = v.public_key();
    let msg = message(&key, 1);
    let sig = v.sign(&msg);
    assert_eq!(single_and_batch(&key, &msg, &sig), (true, true));
    let mut high = sig;
    let s: [u8; 32] = sig[32..].try_into().unwrap();
    high[32..].copy_from_slice(&add_le(&s, &ELL));
    assert_eq!(single_and_batch(&key, &msg, &high), (false, false));
}

#[test]
fn mixed_order_nonce_is_accepted_by_both_paths_under_the_cofactored_equation() {
    // R = rB + T with T of order 8. Only the key holder can make this (S needs a), so
    // accepting it forges nothing; the cofactorless check (ring, OpenSSL) refuses it. The
    // rule is ZIP-215's: both our paths must accept.
    let seed = [6u8; 32];
    let key = VoterSecret::ed25519_from_seed(&seed).public_key();
    let r = Scalar::from_bytes_mod_order([9u8; 32]);
    for t in EIGHT_TORSION.iter().skip(1) {
        let r_enc = (r * B + t).compress().to_bytes();
        let msg = message(&key, 2);
        let sig = sign_with_nonce(&seed, r, r_enc, &msg);
        assert_eq!(single_and_batch(&key, &msg, &sig), (true, true));
        let ring_key =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes());
        assert!(ring_key.verify(&msg, &sig).is_err(), "ring is cofactorless");
    }
}

#[test]
fn non_canonical_nonce_encoding_is_accepted_by_both_paths() {
    // R = identity written as y = p + 1 (non-canonical). ZIP-215 decodes it; S = k·a.
    let seed = [7u8; 32];
    let key = VoterSecret::ed25519_from_seed(&seed).public_key();
    let mut r_enc = [0xffu8; 32];
    r_enc[0] = 0xee;
    r_enc[31] = 0x7f;
    let msg = message(&key, 3);
    let sig = sign_with_nonce(&seed, Scalar::ZERO, r_enc, &msg);
    assert_eq!(single_and_batch(&key, &msg, &sig), (true, true));
}

#[test]
fn small_order_keys_would_verify_forgeries_so_the_roll_refuses_them() {
    // A = T (small order), R = identity, S = 0 satisfies [8]SB = [8]R + [8]kA for every
    // message: under ZIP-215 a small-order key "signs" anything. Hence the roll check.
    let identity = EdwardsPoint::default().compress().to_bytes();
    for t in EIGHT_TORSION.iter() {
        let key = PublicKey::Ed25519(t.compress().to_bytes());
        let msg = message(&key, 1);
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        assert_eq!(single_and_batch(&key, &msg, &forged), (true, true));
        assert!(check_key(&key).is_err());
        let line = format!("ed25519 {}\n", b64(key.as_bytes()));
        assert!(Roll::parse(line.as_bytes(), 0).is_err());
    }
    // And so such a ballot dies at L5 as not_eligible, before any signature is checked.
    let v = VoterSecret::ed25519_from_seed(&[8; 32]);
    let roll = Roll::parse(format!("{}\n", v.roll_line()).as_bytes(), 0).unwrap();
    let states = VoterStates::new(
        Arc::new(roll),
        Election::new("e", RevotePolicy::Last, None, None).unwrap(),
    );
    let key = PublicKey::Ed25519(EIGHT_TORSION[1].compress().to_bytes());
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let b = ballot_for(&key, &message(&key, 1), &forged);
    assert_eq!(states.precheck(&b, 0).unwrap_err().code(), "not_eligible");
}

#[test]
fn every_non_canonical_key_encoding_is_refused_by_the_roll() {
    // y in [p, 2^255): p + 0 ..= p + 18, each with either sign bit.
    for extra in 0u8..19 {
        let mut y = [0xffu8; 32];
        y[0] = 0xed + extra;
        y[31] = 0x7f;
        for sign in [0u8, 0x80] {
            let mut k = y;
            k[31] |= sign;
            assert!(
                check_key(&PublicKey::Ed25519(k)).is_err(),
                "y = p + {extra}"
            );
        }
    }
}
