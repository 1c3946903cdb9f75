//! Ed25519 library choice, measured in on-CPU time rather than wall time.
//!
//! The dev machine is shared (load 3–7 on 2 cores while others compile), so criterion's
//! wall-clock figures swing ±30% between runs. This runs the candidates interleaved, round
//! after round, and charges each only the CPU time its thread actually ran
//! (`/proc/thread-self/schedstat`, ns), then prints medians. Linux only.
//!
//!     cargo run --release --example ed25519_cpu
//!
//! The criterion bench (`benches/ballot.rs`) remains the record; this is the tie-breaker.

use std::time::Instant;

use rand::rngs::OsRng;
use urna::ballot::VoterSecret;

fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

type Case = (Vec<u8>, [u8; 64], [u8; 32]);
/// A name, how many signatures one call checks, and the call.
type Candidate = (&'static str, usize, Box<dyn Fn(&[Case])>);

fn urna_batch(ballots: &[urna::ballot::Ballot]) {
    let out = urna::ballot::verify_batch(ballots.to_vec());
    assert!(out.iter().all(|r| r.is_ok()));
}

fn dalek_batch(c: &[Case]) {
    let msgs: Vec<&[u8]> = c.iter().map(|x| x.0.as_slice()).collect();
    let sigs: Vec<_> = c
        .iter()
        .map(|x| ed25519_dalek::Signature::from_bytes(&x.1))
        .collect();
    let keys: Vec<_> = c
        .iter()
        .map(|x| ed25519_dalek::VerifyingKey::from_bytes(&x.2).unwrap())
        .collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).unwrap();
}

fn main() {
    // Batches of 64 (the reference point) and of 256 (`signatures.max_batch`'s
    // default: the pool takes up to that many when ballots queue up under load).
    const N: usize = 64;
    const BIG: usize = 256;
    const ROUNDS: usize = 12;
    // schedstat advances at scheduler-tick granularity (~4 ms): each sample must run for
    // a few hundred ms (150 × 64 signatures) for that to stay under ~2%.
    const SIGS_PER_SAMPLE: usize = 150 * N;
    let mut rng = OsRng;
    let cases: Vec<Case> = (0..BIG)
        .map(|i| {
            let s = VoterSecret::generate_ed25519(&mut rng);
            let msg =
                format!("urna/ballot/v1\nelection demo\nvoter ed25519 x\nseq {i}\npayload y\n")
                    .into_bytes();
            let sig = s.sign(&msg);
            let pk: [u8; 32] = s.public_key().as_bytes().try_into().unwrap();
            (msg, sig, pk)
        })
        .collect();

    // The server's own path: the same number of real ballots (512-byte payloads), through
    // urna's verify_batch (signed message, SHA-256 of the payload, batch, digests).
    let payload = vec![7u8; 512];
    let ballots: Vec<urna::ballot::Ballot> = (0..BIG)
        .map(|_| {
            let s = VoterSecret::generate_ed25519(&mut rng);
            let body = s.sign_submission("demo-2026", 1, &payload);
            urna::ballot::parse_submission(body.as_bytes(), &urna::ballot::Limits::default())
                .unwrap()
        })
        .collect();

    let big = ballots.clone();
    let candidates: Vec<Candidate> = vec![
        (
            "urna verify_batch 64 ballots",
            N,
            Box::new(move |_: &[Case]| urna_batch(&ballots[..N])),
        ),
        (
            "urna verify_batch 256 ballots",
            BIG,
            Box::new(move |_: &[Case]| urna_batch(&big)),
        ),
        (
            "dalek verify_batch256 (keys decoded inside)",
            BIG,
            Box::new(dalek_batch),
        ),
        (
            "zebra (ZIP-215) batch64",
            N,
            Box::new(|c: &[Case]| {
                let mut v = ed25519_zebra::batch::Verifier::new();
                for (m, s, k) in c {
                    v.queue((
                        ed25519_zebra::VerificationKeyBytes::from(*k),
                        ed25519_zebra::Signature::from_bytes(s),
                        m,
                    ));
                }
                v.verify(rand10::rng()).unwrap();
            }),
        ),
        (
            "consensus (ZIP-215) batch64",
            N,
            Box::new(|c: &[Case]| {
                let mut v = ed25519_consensus::batch::Verifier::new();
                for (m, s, k) in c {
                    v.queue((
                        ed25519_consensus::VerificationKeyBytes::from(*k),
                        ed25519_consensus::Signature::from(*s),
                        m,
                    ));
                }
                v.verify(rand::thread_rng()).unwrap();
            }),
        ),
        (
            "dalek verify_batch64 (keys decoded inside)",
            N,
            Box::new(dalek_batch),
        ),
        (
            "zebra (ZIP-215) single x64",
            N,
            Box::new(|c: &[Case]| {
                for (m, s, k) in c {
                    ed25519_zebra::VerificationKey::try_from(*k)
                        .unwrap()
                        .verify(&ed25519_zebra::Signature::from_bytes(s), m)
                        .unwrap();
                }
            }),
        ),
        (
            "ring single x64",
            N,
            Box::new(|c: &[Case]| {
                for (m, s, k) in c {
                    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, k)
                        .verify(m, s)
                        .unwrap();
                }
            }),
        ),
        (
            "dalek verify_strict single x64",
            N,
            Box::new(|c: &[Case]| {
                for (m, s, k) in c {
                    ed25519_dalek::VerifyingKey::from_bytes(k)
                        .unwrap()
                        .verify_strict(m, &ed25519_dalek::Signature::from_bytes(s))
                        .unwrap();
                }
            }),
        ),
    ];

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); candidates.len()];
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for (i, (_, n, f)) in candidates.iter().enumerate() {
            let reps = SIGS_PER_SAMPLE / n;
            let t0 = on_cpu_ns();
            for _ in 0..reps {
                f(&cases[..*n]);
            }
            let ns = (on_cpu_ns() - t0) as f64 / (reps * n) as f64;
            samples[i].push(ns);
        }
    }
    println!(
        "{ROUNDS} interleaved rounds x {SIGS_PER_SAMPLE} signatures, {:.1} s wall",
        start.elapsed().as_secs_f64()
    );
    for (i, (name, _, _)) in candidates.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = s[s.len() / 2];
        println!("{name:<45} median {:>6.2} µs CPU/signature = {:>6.0} verified/s per core (min {:.2}, max {:.2})",
            med / 1000.0, 1e9 / med, s[0] / 1000.0, s[s.len() - 1] / 1000.0);
    }
}
