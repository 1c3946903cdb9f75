//! Voter secret keys and signing: the client side of the protocol, for `urna roll
//! generate`, the attack simulator and the tests. The server never holds voter secrets.

use ed25519_dalek::{Signer as _, SigningKey};
use rand::{CryptoRng, RngCore};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::wire::{b64, b64_decode, signed_message, submission_json, Alg, PublicKey};

/// A voter's secret key.
pub enum VoterSecret {
    /// The 32-byte RFC 8032 seed.
    Ed25519(SigningKey),
    /// A ring key pair, kept with its PKCS#8 v1 document (ring cannot export the scalar
    /// alone, and PKCS#8 is what WebCrypto and Python's `cryptography` import).
    P256 { pair: EcdsaKeyPair, pkcs8: Vec<u8> },
}

/// Why a stored secret key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("secret key is not canonical base64url-nopad")]
    Encoding,
    #[error("bad {0} secret key")]
    Invalid(Alg),
    #[error("the secret key does not match the public key")]
    Mismatch,
    #[error("key generation failed")]
    Generate,
}

/// One line of `voters.jsonl`: `{"alg":..,"voter":..,"secret":..}`. `secret` is the
/// base64url-nopad Ed25519 seed (32 bytes) or P-256 PKCS#8 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterKeyRecord {
    pub alg: String,
    pub voter: String,
    pub secret: String,
}

impl VoterSecret {
    pub fn generate_ed25519<R: RngCore + CryptoRng>(rng: &mut R) -> VoterSecret {
        VoterSecret::Ed25519(SigningKey::generate(rng))
    }

    pub fn generate_p256() -> Result<VoterSecret, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Generate)?;
        VoterSecret::p256_from_pkcs8(doc.as_ref())
    }

    pub fn ed25519_from_seed(seed: &[u8; 32]) -> VoterSecret {
        VoterSecret::Ed25519(SigningKey::from_bytes(seed))
    }

    pub fn p256_from_pkcs8(pkcs8: &[u8]) -> Result<VoterSecret, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::Invalid(Alg::P256))?;
        Ok(VoterSecret::P256 {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    pub fn alg(&self) -> Alg {
        match self {
            VoterSecret::Ed25519(_) => Alg::Ed25519,
            VoterSecret::P256 { .. } => Alg::P256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            VoterSecret::Ed25519(k) => PublicKey::Ed25519(k.verifying_key().to_bytes()),
            VoterSecret::P256 { pair, .. } => {
                PublicKey::from_bytes(Alg::P256, pair.public_key().as_ref())
                    // ring's P-256 public key is always the 65-byte uncompressed point.
                    .expect("ring P-256 public keys are 65 bytes")
            }
        }
    }

    /// The roll line for this voter, without the newline.
    pub fn roll_line(&self) -> String {
        format!("{} {}", self.alg(), b64(self.public_key().as_bytes()))
    }

    pub fn to_record(&self) -> VoterKeyRecord {
        let secret = match self {
            VoterSecret::Ed25519(k) => b64(k.as_bytes()),
            VoterSecret::P256 { pkcs8, .. } => b64(pkcs8),
        };
        VoterKeyRecord {
            alg: self.alg().as_str().into(),
            voter: b64(self.public_key().as_bytes()),
            secret,
        }
    }

    pub fn from_record(r: &VoterKeyRecord) -> Result<VoterSecret, KeyError> {
        let secret = b64_decode(&r.secret).ok_or(KeyError::Encoding)?;
        let alg = Alg::from_name(&r.alg).ok_or(KeyError::Encoding)?;
        let s = match alg {
            Alg::Ed25519 => {
                let seed: [u8; 32] = secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::Invalid(alg))?;
                VoterSecret::ed25519_from_seed(&seed)
            }
            Alg::P256 => VoterSecret::p256_from_pkcs8(&secret)?,
        };
        if b64(s.public_key().as_bytes()) != r.voter {
            return Err(KeyError::Mismatch);
        }
        Ok(s)
    }

    /// Sign raw bytes with this key (Ed25519 PureEdDSA, or ECDSA P-256 r‖s).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match self {
            VoterSecret::Ed25519(k) => k.sign(message).to_bytes(),
            VoterSecret::P256 { pair, .. } => {
                let sig = pair
                    .sign(&SystemRandom::new(), message)
                    // Signing with a valid key pair fails only if the OS RNG does.
                    .expect("system RNG available for ECDSA signing");
                let mut out = [0u8; 64];
                out.copy_from_slice(sig.as_ref());
                out
            }
        }
    }

    /// A complete, valid submission body (JSON) for this voter.
    pub fn sign_submission(&self, election: &str, seq: u64, payload: &[u8]) -> String {
        let voter = b64(self.public_key().as_bytes());
        let hash: [u8; 32] = Sha256::digest(payload).into();
        let msg = signed_message(election, self.alg(), &voter, seq, &hash);
        let sig = self.sign(&msg);
        submission_json(election, self.alg(), &voter, seq, payload, &sig)
    }
}

/// Which algorithms `roll generate` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgMix {
    Ed25519,
    P256,
    /// Alternating, starting with Ed25519.
    Mixed,
}

/// Generate voter `i` of a test electorate.
pub fn generate_voter<R: RngCore + CryptoRng>(
    mix: AlgMix,
    i: u64,
    rng: &mut R,
) -> Result<VoterSecret, KeyError> {
    match (mix, i % 2) {
        (AlgMix::Ed25519, _) | (AlgMix::Mixed, 0) => Ok(VoterSecret::generate_ed25519(rng)),
        _ => VoterSecret::generate_p256(),
    }
}

/// Write a test electorate: `count` roll lines to `roll` and the matching secret-key
/// records (JSON lines) to `keys`, in the same order. For `urna roll generate`, the
/// simulator and the tests; never for a real election (the secrets leave the voters).
pub fn write_electorate<R: std::io::Write, K: std::io::Write>(
    count: u64,
    mix: AlgMix,
    roll: &mut R,
    keys: &mut K,
) -> Result<(), ElectorateError> {
    let mut rng = rand::rngs::OsRng;
    for i in 0..count {
        let v = generate_voter(mix, i, &mut rng)?;
        writeln!(roll, "{}", v.roll_line())?;
        serde_json::to_writer(&mut *keys, &v.to_record()).map_err(std::io::Error::from)?;
        keys.write_all(b"\n")?;
    }
    roll.flush()?;
    keys.flush()?;
    Ok(())
}

/// Why `write_electorate` failed.
#[derive(Debug, thiserror::Error)]
pub enum ElectorateError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_round_trip_and_detect_mismatch() {
        let mut rng = rand::thread_rng();
        for s in [
            VoterSecret::generate_ed25519(&mut rng),
            VoterSecret::generate_p256().unwrap(),
        ] {
            let rec = s.to_record();
            let back = VoterSecret::from_record(&rec).unwrap();
            assert_eq!(back.public_key(), s.public_key());
            let mut wrong = rec.clone();
            wrong.voter = VoterSecret::generate_ed25519(&mut rng).to_record().voter;
            assert!(matches!(
                VoterSecret::from_record(&wrong),
                Err(KeyError::Mismatch)
            ));
        }
    }

    #[test]
    fn generated_electorate_is_a_loadable_roll_with_matching_keys() {
        let (mut roll, mut keys) = (Vec::new(), Vec::new());
        write_electorate(6, AlgMix::Mixed, &mut roll, &mut keys).unwrap();
        let r = crate::ballot::Roll::parse(roll.as_slice(), 0).unwrap();
        assert_eq!(r.len(), 6);
        let recs: Vec<VoterKeyRecord> = std::str::from_utf8(&keys)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 6);
        for (i, rec) in recs.iter().enumerate() {
            let s = VoterSecret::from_record(rec).unwrap();
            assert_eq!(s.alg(), if i % 2 == 0 { Alg::Ed25519 } else { Alg::P256 });
            assert!(r.lookup(&s.public_key()).is_some());
        }
    }
}
