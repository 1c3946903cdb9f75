//! The auditor's hot path (issue 11), piece by piece, on what `urna audit` sees in a
//! 1,000,001-entry log of one Ed25519 ballot per voter (512-byte payloads):
//!
//! - `audit_pieces`: one point decompression (a voter key `A` or a signature's `R`: each
//!   signature needs both), the SHA-512 challenge `k`, an entry's leaf hash (SHA-256), a
//!   ballot's digest, a strict decode plus canonical re-encode;
//! - `audit_batch`: the ZIP-215 batch of [`verify_signatures`] at one bundle (256) and at
//!   four (1,024);
//! - `audit_bundle`: [`prepare_bundle`] (the parallel part, per bundle) and
//!   [`LogAudit::apply`] (the in-order part, per bundle).
//!
//!     cargo bench --bench audit
//!
//! Per ballot, the parallel part must stay under 2 cores / 100,000 ballots/s = 20 µs of CPU
//! for the target, and the in-order part well under 10 µs (it runs on one core).

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest as _, Sha512};
use urna::audit::check::{prepare_bundle, LogAudit, PreparedBundle};
use urna::audit::proof::leaf_hash;
use urna::audit::receipt::CheckpointBody;
use urna::ballot::{
    decode_entry, encode_entry, parse_submission, verify, verify_signatures, Ballot, Election,
    Entry, Limits, Manifest, PublicKey, RevotePolicy, Roll, SignedItem, VoterSecret,
};
use urna::log::tiles::push_bundle_entry;

const ELECTION: &str = "bench-2026";
const PAYLOAD_BYTES: usize = 512;
/// Bundles of the in-order bench: the manifest and 1,023 ballots.
const BUNDLES: usize = 4;
const VOTERS: usize = BUNDLES * 256 - 1;

struct Setup {
    roll: Arc<Roll>,
    verifier_key: String,
    /// Entry 0 (the manifest), then one ballot per voter.
    entries: Vec<Vec<u8>>,
    ballots: Vec<Ballot>,
}

fn setup() -> Setup {
    let voters: Vec<VoterSecret> = (0..VOTERS as u64)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            VoterSecret::ed25519_from_seed(&seed)
        })
        .collect();
    let text: String = voters.iter().map(|v| v.roll_line() + "\n").collect();
    let roll = Arc::new(Roll::parse(text.as_bytes(), text.len() as u64).unwrap());
    let (_, key) = urna::log::LogKey::generate("urna.bench/audit").unwrap();
    let verifier_key = key.verifier_key().to_owned();
    let manifest = Manifest {
        election: Election::new(ELECTION, RevotePolicy::Last, None, None).unwrap(),
        roll_sha256: roll.sha256(),
        log_verifier_key: verifier_key.clone(),
    }
    .encode()
    .unwrap();
    let payload = vec![0x5au8; PAYLOAD_BYTES];
    let ballots: Vec<Ballot> = voters
        .iter()
        .map(|v| {
            let json = v.sign_submission(ELECTION, 1, &payload);
            parse_submission(json.as_bytes(), &Limits::default()).unwrap()
        })
        .collect();
    let mut entries = vec![manifest];
    for (i, b) in ballots.iter().enumerate() {
        entries.push(encode_entry(
            &verify(b.clone()).unwrap(),
            1_700_000_000_000 + i as u64,
        ));
    }
    Setup {
        roll,
        verifier_key,
        entries,
        ballots,
    }
}

fn bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        push_bundle_entry(&mut out, e);
    }
    out
}

fn bench_pieces(c: &mut Criterion, s: &Setup) {
    let b = &s.ballots[0];
    let PublicKey::Ed25519(key) = b.key() else {
        unreachable!("Ed25519 voters")
    };
    let message = b.signed_message();
    let entry = &s.entries[1];
    let mut g = c.benchmark_group("audit_pieces");
    g.throughput(Throughput::Elements(1));
    g.bench_function("point_decompress", |bch| {
        bch.iter(|| CompressedEdwardsY(*black_box(key)).decompress().unwrap())
    });
    g.bench_function("sha512_challenge", |bch| {
        bch.iter(|| {
            let mut h = Sha512::new();
            h.update(&b.sig()[..32]);
            h.update(key);
            h.update(black_box(&message));
            h.finalize()
        })
    });
    g.bench_function("leaf_hash_sha256", |bch| {
        bch.iter(|| leaf_hash(black_box(entry)))
    });
    let Ok(Entry::Ballot(lb)) = decode_entry(entry) else {
        unreachable!("entry 1 is a ballot")
    };
    g.bench_function("ballot_digest", |bch| bch.iter(|| black_box(&lb).digest()));
    g.bench_function("decode_and_reencode", |bch| {
        bch.iter(|| {
            let Ok(Entry::Ballot(lb)) = decode_entry(black_box(entry)) else {
                unreachable!("entry 1 is a ballot")
            };
            lb.encode() == *entry
        })
    });
    g.finish();
}

fn bench_batch(c: &mut Criterion, s: &Setup) {
    let messages: Vec<Vec<u8>> = s.ballots.iter().map(|b| b.signed_message()).collect();
    let items: Vec<SignedItem<'_>> = s
        .ballots
        .iter()
        .zip(&messages)
        .map(|(b, m)| (b.key(), m.as_slice(), b.sig()))
        .collect();
    let mut g = c.benchmark_group("audit_batch");
    for n in [256, 1020] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("verify_signatures_{n}"), |bch| {
            bch.iter(|| {
                let v = verify_signatures(black_box(&items[..n]));
                assert!(v.iter().all(|r| r.is_ok()));
            })
        });
    }
    g.finish();
}

fn bench_bundle(c: &mut Criterion, s: &Setup) {
    let bundles: Vec<Vec<u8>> = s.entries.chunks(256).map(bundle).collect();
    let mut g = c.benchmark_group("audit_bundle");
    g.throughput(Throughput::Elements(256));
    g.bench_function("prepare_256", |bch| {
        bch.iter(|| prepare_bundle(1, 256, Some(black_box(&bundles[1])), None))
    });
    let prepared: Vec<PreparedBundle> = bundles
        .iter()
        .enumerate()
        .map(|(i, b)| prepare_bundle(i as u64, 256, Some(b), None))
        .collect();
    assert!(prepared.iter().all(|p| p.violations.is_empty()));
    g.throughput(Throughput::Elements((BUNDLES * 256) as u64));
    g.bench_function(format!("apply_{BUNDLES}x256"), |bch| {
        bch.iter_batched(
            || {
                let checkpoint = CheckpointBody {
                    origin: "urna.bench/audit".into(),
                    size: (BUNDLES * 256) as u64,
                    root: [0; 32],
                };
                let audit =
                    LogAudit::new(s.roll.clone(), &s.verifier_key, checkpoint, None).unwrap();
                (audit, prepared.clone())
            },
            |(mut audit, prepared)| {
                for p in prepared {
                    audit.apply(p).unwrap();
                }
                audit
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let s = setup();
    bench_pieces(c, &s);
    bench_batch(c, &s);
    bench_bundle(c, &s);
}

criterion_group! {
    name = audit;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(audit);
