//! The log's Ed25519 signing key, in the signed-note private key format
//! (`PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`), and its verifier key
//! (`<name>+<hex id>+<base64(0x01 ‖ public key)>`).

use signed_note::{Signer, StandardSigner};
use std::path::Path;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed signed-note private key: {0}")]
    Malformed(String),
}

/// The log's signing key.
#[derive(Clone)]
pub struct LogKey {
    signer: StandardSigner,
    verifier_key: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("LogKey")
            .field("verifier_key", &self.verifier_key)
            .finish()
    }
}

impl LogKey {
    /// Parses a signed-note private key.
    pub fn parse(skey: &str) -> Result<Self, KeyError> {
        let skey = skey.trim();
        let signer = StandardSigner::new(skey).map_err(|e| KeyError::Malformed(e.to_string()))?;
        // Derive the public half from the seed (the last `+` field: base64(0x01 ‖ seed)).
        // Five fields; the last (base64) may itself contain '+', the others may not.
        let seed_b64 = skey
            .splitn(5, '+')
            .nth(4)
            .ok_or_else(|| KeyError::Malformed("no key field".into()))?;
        let seed = base64_decode(seed_b64).map_err(KeyError::Malformed)?;
        let seed: [u8; 32] = seed
            .get(1..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| KeyError::Malformed("key is not 0x01 ‖ 32 bytes".into()))?;
        let vk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let verifier_key = signed_note::new_ed25519_verifier_key(signer.name(), &vk);
        Ok(Self {
            signer,
            verifier_key,
        })
    }

    /// Reads a key file written by `urna keygen`.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// A new random key named `name`: returns the private key text and the key.
    pub fn generate(name: &str) -> Result<(String, Self), KeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(KeyError::Malformed(format!("invalid key name {name:?}")));
        }
        let (skey, _vkey) = signed_note::generate_key(&mut rand::rngs::OsRng, name);
        let key = Self::parse(&skey)?;
        Ok((skey, key))
    }

    /// Generates a key named `name` and writes it to `path`, which must not exist: created
    /// with mode 0600 and fsynced, so the key that signs the first checkpoint is never lost
    /// to a crash while the checkpoint survives it.
    pub fn generate_file(name: &str, path: &Path) -> Result<Self, KeyError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let (skey, key) = Self::generate(name)?;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(format!("{skey}\n").as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(key)
    }

    /// The key's name, which is the log's origin.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key: `name+hex(id)+base64(0x01 ‖ public key)`.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    pub(crate) fn signer(&self) -> &StandardSigner {
        &self.signer
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_back_and_verifier_key_has_three_parts() {
        // Many keys: about one in five has a '+' in its base64 part.
        for _ in 0..64 {
            let (skey, key) = LogKey::generate("urna.test/e1").unwrap();
            assert_eq!(
                LogKey::parse(&skey).unwrap().verifier_key(),
                key.verifier_key()
            );
        }
        let (skey, key) = LogKey::generate("urna.test/e1").unwrap();
        assert!(skey.starts_with("PRIVATE+KEY+urna.test/e1+"));
        let again = LogKey::parse(&format!("{skey}\n")).unwrap();
        assert_eq!(again.verifier_key(), key.verifier_key());
        let parts: Vec<&str> = key.verifier_key().splitn(3, '+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "urna.test/e1");
        assert_eq!(parts[1].len(), 8);
        assert!(signed_note::StandardVerifier::new(key.verifier_key()).is_ok());
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(LogKey::parse("").is_err());
        assert!(LogKey::parse("PRIVATE+KEY+x+00000000+AQ==").is_err());
        assert!(LogKey::generate("has space").is_err());
    }
}
