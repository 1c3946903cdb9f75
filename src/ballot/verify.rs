//! L6: signature verification, the hot path. The one rule, shared by the server and the
//! auditor (docs/PROTOCOL.md §Signatures):
//!
//! - **Ed25519: ZIP-215** (via `ed25519-zebra` 5). `S` must be canonical (`S < ℓ`); `A`
//!   and `R` may be any encoding that decompresses, canonical or not; the check is the
//!   cofactored equation `[8][S]B = [8]R + [8][k]A` with `k = SHA-512(R ‖ A ‖ M)` over the
//!   encodings as sent. Chosen because under it single and batch verification accept exactly
//!   the same signatures, so batching can never change an answer. The roll refuses
//!   small-order and non-canonical keys (`roll.rs`), the two cases where ZIP-215's leniency
//!   would matter. The tests cross-check every edge case against ed25519-consensus, an
//!   independent ZIP-215 implementation an auditor might use.
//!
//!   Measured (examples/ed25519_cpu.rs, on-CPU time, and benches/ballot.rs; figures in
//!   docs/ARCHITECTURE.md): a `verify_batch` of 256 ballots costs less than half of a single
//!   verification a signature (16 µs against 35–38 µs for ring, dalek or zebra alone on a
//!   quiet core), and curve25519-dalek 5's AVX-512 IFMA backend (`.cargo/config.toml`)
//!   takes another ~20% off the batch where the CPU has it; ed25519-dalek's cofactorless
//!   `verify_batch` is ~5% cheaper, the price of ZIP-215's agreement between batch and
//!   single.
//! - **P-256**: ECDSA with SHA-256, `r‖s` fixed-width (ring's `ECDSA_P256_SHA256_FIXED`);
//!   ring requires `0 < r, s < n` and a key on the curve.

use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

use super::error::BallotError;
use super::wire::{ballot_digest, Ballot, BallotDigest, PublicKey};

/// The curve25519-dalek backend that verifies Ed25519 in this process.
///
/// curve25519-dalek picks it at run time and does not say which, so [`Ed25519Backend::detect`]
/// repeats its rule (5.0's private `backend::get_selected_backend`: IFMA + AVX-512VL if the
/// build has the `avx512` cfg, else AVX2 on 64-bit x86-64, else the serial code). Its one
/// use is to tell the operator (startup line, `urna_ed25519_backend` gauge), because a
/// build made with a `RUSTFLAGS` of its own silently loses the `--cfg` of
/// `.cargo/config.toml` and with it ~20% of the signature pool's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ed25519Backend {
    Avx512Ifma,
    Avx2,
    Serial,
}

/// Whether curve25519-dalek holds its IFMA backend: asked for with the cfg, or, with no
/// backend asked for, chosen by its build script because the target CPU has IFMA and VL
/// (`-C target-cpu=native` on such a CPU). Mirrors dalek 5.0's build.rs.
const IFMA_BUILT: bool = cfg!(curve25519_dalek_backend = "avx512")
    || (!cfg!(any(
        curve25519_dalek_backend = "simd",
        curve25519_dalek_backend = "serial",
        curve25519_dalek_backend = "fiat"
    )) && cfg!(all(
        target_feature = "avx512ifma",
        target_feature = "avx512vl"
    )));

/// Whether the vector backends can exist at all (dalek's `is_capable_simd`), and were not
/// replaced by a serial one.
const VECTOR_BUILT: bool = cfg!(all(target_arch = "x86_64", target_pointer_width = "64"))
    && !cfg!(any(
        curve25519_dalek_backend = "serial",
        curve25519_dalek_backend = "fiat"
    ));

impl Ed25519Backend {
    pub fn detect() -> Self {
        if !VECTOR_BUILT {
            Ed25519Backend::Serial
        } else if IFMA_BUILT && cpu_has_ifma() {
            Ed25519Backend::Avx512Ifma
        } else if cpu_has_avx2() {
            Ed25519Backend::Avx2
        } else {
            Ed25519Backend::Serial
        }
    }

    /// The label value: `avx512ifma`, `avx2` or `serial`.
    pub fn label(self) -> &'static str {
        match self {
            Ed25519Backend::Avx512Ifma => "avx512ifma",
            Ed25519Backend::Avx2 => "avx2",
            Ed25519Backend::Serial => "serial",
        }
    }

    /// True when this CPU could run the IFMA backend but the build left it out.
    pub fn ifma_left_out() -> bool {
        VECTOR_BUILT && !IFMA_BUILT && cpu_has_ifma()
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_ifma() -> bool {
    std::arch::is_x86_feature_detected!("avx512ifma")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_ifma() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx2() -> bool {
    false
}

/// A ballot whose signature verified. Only this module can make one, so a function that
/// takes a `VerifiedBallot` cannot be handed an unchecked ballot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBallot {
    ballot: Ballot,
    digest: BallotDigest,
}

impl VerifiedBallot {
    pub fn ballot(&self) -> &Ballot {
        &self.ballot
    }
    /// See [`Ballot::digest`]; computed once during verification.
    pub fn digest(&self) -> BallotDigest {
        self.digest
    }
    pub fn into_ballot(self) -> Ballot {
        self.ballot
    }
}

/// Verify one signature over `message` under the rule above. Used by the server and by the
/// auditor on decoded log entries.
pub fn verify_signature(
    key: &PublicKey,
    message: &[u8],
    sig: &[u8; 64],
) -> Result<(), BallotError> {
    let ok = match key {
        PublicKey::Ed25519(k) => VerificationKey::try_from(*k)
            .and_then(|vk| vk.verify(&Signature::from_bytes(sig), message))
            .is_ok(),
        PublicKey::P256(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k)
            .verify(message, sig)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(BallotError::BadSignature)
    }
}

/// Verify one ballot.
pub fn verify(ballot: Ballot) -> Result<VerifiedBallot, BallotError> {
    let message = ballot.signed_message();
    verify_signature(&ballot.key, &message, &ballot.sig)?;
    let digest = ballot_digest(&message, &ballot.sig);
    Ok(VerifiedBallot { ballot, digest })
}

/// Verify many ballots; result `i` belongs to ballot `i`. The server's L6, through
/// [`verify_signatures`].
pub fn verify_batch(ballots: Vec<Ballot>) -> Vec<Result<VerifiedBallot, BallotError>> {
    let prepared: Vec<(Ballot, Vec<u8>)> = ballots
        .into_iter()
        .map(|b| {
            let m = b.signed_message();
            (b, m)
        })
        .collect();
    let items: Vec<SignedItem<'_>> = prepared
        .iter()
        .map(|(b, m)| (&b.key, m.as_slice(), &b.sig))
        .collect();
    let verdicts = verify_signatures(&items);
    prepared
        .into_iter()
        .zip(verdicts)
        .map(|((ballot, message), verdict)| {
            verdict?;
            let digest = ballot_digest(&message, &ballot.sig);
            Ok(VerifiedBallot { ballot, digest })
        })
        .collect()
}

/// One signature to check: the key, the exact signed bytes, the signature.
pub type SignedItem<'a> = (&'a PublicKey, &'a [u8], &'a [u8; 64]);

/// Verify many signatures under the rule above; result `i` belongs to item `i`, and is
/// exactly what [`verify_signature`] gives for it alone. The server (through
/// [`verify_batch`]) and the auditor (a bundle of log entries at a time) both run this.
///
/// Ed25519 signatures are checked together in one batch (one multiscalar multiplication).
/// If the batch fails, each is re-checked alone, so a bad signature is attributed to its
/// own item and never sinks its neighbours. That fallback costs a full single verification
/// per item: a source that keeps sending bad signatures makes batches expensive, which is
/// why the edge penalises such sources (docs/ARCHITECTURE.md, L6). P-256 has no batch form and is
/// verified one by one. ZIP-215 is what makes the batch safe: under it a batch accepts
/// exactly when every one of its signatures would alone.
pub fn verify_signatures(items: &[SignedItem<'_>]) -> Vec<Result<(), BallotError>> {
    let mut ed_batch = batch::Verifier::new();
    let mut ed_count = 0usize;
    for (key, message, sig) in items {
        if let PublicKey::Ed25519(k) = key {
            ed_batch.queue((
                VerificationKeyBytes::from(*k),
                Signature::from_bytes(sig),
                message,
            ));
            ed_count += 1;
        }
    }
    // The batch needs 128 random bits per signature; `rand10::rng()`, the thread-local
    // ChaCha generator seeded from the OS (rand 0.10: the rand_core zebra 5 takes), gives
    // them without a getrandom syscall each, as an OS generator would. Taken once a batch.
    let ed_all_good = ed_count > 0 && ed_batch.verify(rand10::rng()).is_ok();
    if ed_count > 0 && !ed_all_good {
        metrics::counter!("urna_ballot_verify_batch_fallback_total").increment(1);
    }
    items
        .iter()
        .map(|(key, message, sig)| {
            if ed_all_good && matches!(key, PublicKey::Ed25519(_)) {
                Ok(())
            } else {
                verify_signature(key, message, sig)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::keys::VoterSecret;
    use crate::ballot::wire::{parse_submission, Limits};

    fn signed(secret: &VoterSecret, seq: u64) -> Ballot {
        let json = secret.sign_submission("demo", seq, b"payload");
        parse_submission(json.as_bytes(), &Limits::default()).unwrap()
    }

    fn tamper(b: &Ballot) -> Ballot {
        let mut t = b.clone();
        t.sig[5] ^= 1;
        t
    }

    #[test]
    fn the_build_runs_the_ifma_backend_wherever_the_cpu_has_it() {
        // Fails when a build loses .cargo/config.toml's --cfg (a RUSTFLAGS of its own
        // replaces it) on a CPU with AVX-512 IFMA: the server would then verify ~20% slower
        // and, rightly, warn at startup.
        let b = Ed25519Backend::detect();
        if cpu_has_ifma() && cfg!(target_arch = "x86_64") {
            assert_eq!(
                b,
                Ed25519Backend::Avx512Ifma,
                "built without the IFMA backend"
            );
            assert!(!Ed25519Backend::ifma_left_out());
        }
        assert_eq!(
            Ed25519Backend::ifma_left_out(),
            !IFMA_BUILT && VECTOR_BUILT && cpu_has_ifma()
        );
        assert!(["avx512ifma", "avx2", "serial"].contains(&b.label()));
    }

    #[test]
    fn good_signatures_verify_for_both_algorithms() {
        let mut rng = rand::thread_rng();
        for s in [
            VoterSecret::generate_ed25519(&mut rng),
            VoterSecret::generate_p256().unwrap(),
        ] {
            let b = signed(&s, 1);
            let v = verify(b.clone()).unwrap();
            assert_eq!(v.digest(), b.digest());
            assert_eq!(verify(tamper(&b)).unwrap_err().code(), "bad_signature");
        }
    }

    #[test]
    fn a_bad_signature_in_a_batch_is_attributed_to_its_own_ballot() {
        let mut rng = rand::thread_rng();
        let mut ballots = Vec::new();
        for i in 0..20 {
            let s = if i % 5 == 4 {
                VoterSecret::generate_p256().unwrap()
            } else {
                VoterSecret::generate_ed25519(&mut rng)
            };
            ballots.push(signed(&s, 1));
        }
        ballots[3] = tamper(&ballots[3]);
        ballots[9] = tamper(&ballots[9]);
        let out = verify_batch(ballots.clone());
        assert_eq!(out.len(), 20);
        for (i, r) in out.iter().enumerate() {
            if i == 3 || i == 9 {
                assert_eq!(r.as_ref().unwrap_err().code(), "bad_signature", "{i}");
            } else {
                assert_eq!(r.as_ref().unwrap().ballot(), &ballots[i], "{i}");
            }
        }
        // An all-good batch takes the fast path and accepts everything.
        ballots[3] = signed(&VoterSecret::generate_ed25519(&mut rng), 2);
        ballots[9] = signed(&VoterSecret::generate_ed25519(&mut rng), 2);
        assert!(verify_batch(ballots).iter().all(|r| r.is_ok()));
        assert!(verify_batch(Vec::new()).is_empty());
    }
}
