//! Hot paths of L5–L6 (issue 3): parse, roll lookup, rule check, and signature
//! verification single vs batched for each algorithm; and the auditor's per-bundle work
//! (`audit_bundle`), which re-verifies every logged signature.
//!
//!     cargo bench --bench ballot
//!
//! Targets on the 2-core dev machine: parse + lookup + rule check ≤ 2 µs per ballot;
//! Ed25519 ≥ 60,000 verified signatures/s per core in batches.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::RngCore;
use urna::audit::check::prepare_bundle;
use urna::ballot::wire::b64;
use urna::ballot::{
    encode_entry, parse_submission, verify, verify_batch, verify_signature, Ballot, Election,
    Limits, PublicKey, RevotePolicy, Roll, VoterSecret, VoterStates,
};
use urna::log::tiles::push_bundle_entry;

const ROLL_VOTERS: usize = 1_000_000;
const BATCH: usize = 64;
/// Batch sizes compared for Ed25519.
const ED_BATCHES: [usize; 3] = [16, 64, 256];
/// A realistic encrypted ballot: a few hundred bytes of ciphertext.
const PAYLOAD_BYTES: usize = 512;

struct Setup {
    states: VoterStates,
    voters: Vec<VoterSecret>,
    bodies: Vec<String>,
}

/// A 1M-voter roll whose first 256 entries are real keys (the rest are random 32-byte
/// strings that pass the roll's cheap checks: lookups only hash and compare bytes).
fn setup() -> Setup {
    let mut rng = rand::thread_rng();
    // 256 Ed25519 voters and 64 P-256 voters.
    let voters: Vec<_> = (0..320)
        .map(|i| {
            if i % 5 == 4 {
                VoterSecret::generate_p256().unwrap()
            } else {
                VoterSecret::generate_ed25519(&mut rng)
            }
        })
        .collect();
    let mut text = String::with_capacity(ROLL_VOTERS * 52);
    for v in &voters {
        text += &v.roll_line();
        text.push('\n');
    }
    for _ in voters.len()..ROLL_VOTERS {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        k[31] &= 0x3f; // canonical y, and almost surely not small order
        text += "ed25519 ";
        text += &b64(&k);
        text.push('\n');
    }
    let roll = Arc::new(Roll::parse(text.as_bytes(), text.len() as u64).unwrap());
    let election = Election::new("demo-2026", RevotePolicy::Last, None, None).unwrap();
    let mut states = VoterStates::new(roll, election);
    let mut payload = vec![0u8; PAYLOAD_BYTES];
    rng.fill_bytes(&mut payload);
    let bodies: Vec<String> = voters
        .iter()
        .map(|v| v.sign_submission("demo-2026", 1, &payload))
        .collect();
    // Voter 1 has already voted: resubmitting the same body is an identical repeat.
    let logged = verify(parse(&bodies[1])).unwrap();
    states.admit(&logged, 0, 1).unwrap();
    Setup {
        states,
        voters,
        bodies,
    }
}

fn parse(b: &str) -> Ballot {
    parse_submission(b.as_bytes(), &Limits::default()).unwrap()
}

fn bench_l5(c: &mut Criterion, s: &Setup) {
    let lim = Limits::default();
    let ed_body = &s.bodies[0];
    let mut g = c.benchmark_group("l5");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| parse_submission(black_box(ed_body.as_bytes()), &lim).unwrap())
    });
    let key = s.voters[0].public_key();
    g.bench_function("roll_lookup_hit", |b| {
        b.iter(|| s.states.roll().lookup(black_box(&key)).unwrap())
    });
    let stranger = PublicKey::Ed25519([7u8; 32]);
    g.bench_function("roll_lookup_miss", |b| {
        b.iter(|| s.states.roll().lookup(black_box(&stranger)))
    });
    let ballot = parse(ed_body);
    g.bench_function("rule_check_precheck", |b| {
        b.iter(|| s.states.precheck(black_box(&ballot), 0).unwrap())
    });
    let repeat = parse(&s.bodies[1]);
    g.bench_function("rule_check_precheck_repeat", |b| {
        b.iter(|| s.states.precheck(black_box(&repeat), 0).unwrap())
    });
    let verified = verify(ballot.clone()).unwrap();
    g.bench_function("rule_check_decide", |b| {
        b.iter(|| s.states.decide(black_box(&verified), 0))
    });
    // The whole of L5 for one ballot: parse, election, roll lookup, window, seq rule.
    g.bench_function("parse_lookup_rule", |b| {
        b.iter(|| {
            let ballot = parse_submission(black_box(ed_body.as_bytes()), &lim).unwrap();
            s.states.precheck(&ballot, 0).unwrap()
        })
    });
    g.finish();
}

fn bench_verify(c: &mut Criterion, s: &Setup) {
    let ed: Vec<Ballot> = s
        .bodies
        .iter()
        .map(|b| parse(b))
        .filter(|b| matches!(b.key(), PublicKey::Ed25519(_)))
        .collect();
    let p256: Vec<Ballot> = s
        .bodies
        .iter()
        .map(|b| parse(b))
        .filter(|b| matches!(b.key(), PublicKey::P256(_)))
        .take(BATCH)
        .collect();
    assert_eq!((ed.len(), p256.len()), (256, BATCH));
    let msgs: Vec<(Vec<u8>, [u8; 64], [u8; 32])> = ed
        .iter()
        .map(|b| {
            let k: [u8; 32] = b.key().as_bytes().try_into().unwrap();
            (b.signed_message(), *b.sig(), k)
        })
        .collect();

    let mut g = c.benchmark_group("verify_ed25519");
    g.throughput(Throughput::Elements(1));
    let (m, sig, k) = &msgs[0];
    let pk = PublicKey::Ed25519(*k);
    g.bench_function("zebra_zip215_single", |b| {
        b.iter(|| verify_signature(&pk, black_box(m), sig).unwrap())
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, *k);
    g.bench_function("ring_single", |b| {
        b.iter(|| ring_key.verify(black_box(m), sig).unwrap())
    });
    // Key decoding is inside every timed loop: the server sees a different voter key in
    // nearly every ballot, so decompressing it is part of the cost.
    let dalek_sig = ed25519_dalek::Signature::from_bytes(sig);
    g.bench_function("dalek_single", |b| {
        b.iter(|| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(k)).unwrap();
            key.verify_strict(black_box(m), &dalek_sig).unwrap()
        })
    });
    for n in ED_BATCHES {
        let msgs = &msgs[..n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("zebra_zip215_batch{n}_raw"), |b| {
            b.iter(|| {
                let mut v = ed25519_zebra::batch::Verifier::new();
                for (m, sig, k) in msgs {
                    v.queue((
                        ed25519_zebra::VerificationKeyBytes::from(*k),
                        ed25519_zebra::Signature::from_bytes(sig),
                        m,
                    ));
                }
                v.verify(rand10::rng()).unwrap()
            })
        });
        let dalek_msgs: Vec<&[u8]> = msgs.iter().map(|(m, _, _)| m.as_slice()).collect();
        let dalek_sigs: Vec<_> = msgs
            .iter()
            .map(|(_, s, _)| ed25519_dalek::Signature::from_bytes(s))
            .collect();
        g.bench_function(format!("dalek_batch{n}_raw"), |b| {
            b.iter(|| {
                let keys: Vec<_> = msgs
                    .iter()
                    .map(|(_, _, k)| ed25519_dalek::VerifyingKey::from_bytes(k).unwrap())
                    .collect();
                ed25519_dalek::verify_batch(&dalek_msgs, &dalek_sigs, &keys).unwrap()
            })
        });
        // What the server runs: message building, SHA-256 of payloads, batch, digests.
        let ballots = &ed[..n];
        g.bench_function(format!("urna_verify_batch{n}"), |b| {
            b.iter_batched(|| ballots.to_vec(), verify_batch, BatchSize::SmallInput)
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("urna_verify_single", |b| {
        b.iter_batched(|| ed[0].clone(), verify, BatchSize::SmallInput)
    });
    g.finish();

    let mut g = c.benchmark_group("verify_p256");
    g.throughput(Throughput::Elements(1));
    g.bench_function("urna_verify_single", |b| {
        b.iter_batched(|| p256[0].clone(), verify, BatchSize::SmallInput)
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("urna_verify_batch64", |b| {
        b.iter_batched(|| p256.clone(), verify_batch, BatchSize::SmallInput)
    });
    g.finish();
}

/// One full entry bundle of 256 Ed25519 ballots (512-byte payloads), audited as
/// `urna audit` does for each bundle: split, strict decode, canonical re-encode, every
/// signature, every leaf hash. Dominated by the signatures.
fn bench_audit(c: &mut Criterion, s: &Setup) {
    let mut bundle = Vec::new();
    for body in &s.bodies {
        let b = parse(body);
        if matches!(b.key(), PublicKey::Ed25519(_)) {
            push_bundle_entry(&mut bundle, &encode_entry(&verify(b).unwrap(), 1_000));
        }
    }
    let mut g = c.benchmark_group("audit_bundle");
    g.throughput(Throughput::Elements(256));
    g.bench_function("ed25519_256", |b| {
        b.iter(|| prepare_bundle(1, 256, Some(black_box(&bundle)), None))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let s = setup();
    bench_l5(c, &s);
    bench_verify(c, &s);
    bench_audit(c, &s);
}

criterion_group! {
    name = ballot;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(ballot);
