//! L2's certificate: loading, first-start generation, and reload without restart.
//!
//! The server config resolves its certificate through [`CertStore`], which holds the current
//! `CertifiedKey` behind an atomic pointer swap: a SIGHUP re-reads the files and swaps the
//! pointer; handshakes already running keep the key they started with. A bad new pair is
//! refused and the old one stays (an operator's typo must not take the endpoint down).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate could not be loaded or generated. All are the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate {cert} and key {key} do not match: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The ring provider, the only one compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes a self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1` to
/// `cert_path`/`key_path` unless both exist. Returns whether it generated one.
pub fn ensure_self_signed(cert_path: &Path, key_path: &Path) -> Result<bool, TlsError> {
    if cert_path.exists() && key_path.exists() {
        return Ok(false);
    }
    let names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    // rcgen's default key algorithm is ECDSA P-256 with SHA-256.
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    for path in [cert_path, key_path] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
    }
    write_private(key_path, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: cert_path.to_owned(),
        source,
    })?;
    Ok(true)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write(&options).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM chain and key and checks that they belong together.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert_path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no certificate in file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })
}

/// The certificate in use, swappable at run time.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the pair; fails if either file is unreadable or they do not match.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let provider = provider();
        let key = load_certified_key(cert_path, key_path, &provider)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Re-reads the files. On success new handshakes use the new pair; on failure the old
    /// pair stays in use and the error is returned (and counted) for the caller to log.
    pub fn reload(&self) -> Result<(), TlsError> {
        match load_certified_key(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                metrics::counter!("urna_tls_reloads_total", "result" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("urna_tls_reloads_total", "result" => "error").increment(1);
                Err(e)
            }
        }
    }

    /// The leaf certificate in use now (DER).
    pub fn current_leaf(&self) -> CertificateDer<'static> {
        self.current.load().cert[0].clone()
    }

    /// A rustls server config that resolves through this store, ALPN h2 then http/1.1.
    ///
    /// With `tickets`, resumption is stateless: rustls' ring ticketer (AES-256-GCM keys that
    /// rotate every 6 hours, the previous key still accepted) seals the session into the
    /// ticket, so the server keeps nothing per client — a flood of handshakes cannot fill a
    /// session cache — and a voter who reconnects (a retry, a receipt check) skips the
    /// certificate signature and the key exchange's second half. One ticket per TLS 1.3
    /// handshake (rustls sends 2 by default): a voter makes one or two connections, and each
    /// ticket costs an encryption and ~200 bytes on the wire.
    pub fn server_config(
        self: &Arc<Self>,
        tickets: bool,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Generate(format!("session ticketer: {e}")))?;
            config.send_tls13_tickets = 1;
        } else {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_and_is_kept_on_second_start() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        );
        assert!(ensure_self_signed(&cert, &key).unwrap());
        let first = std::fs::read(&cert).unwrap();
        assert!(!ensure_self_signed(&cert, &key).unwrap());
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        CertStore::load(&cert, &key).unwrap();
    }

    #[test]
    fn reload_with_a_bad_pair_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        ensure_self_signed(&cert, &key).unwrap();
        let store = CertStore::load(&cert, &key).unwrap();
        let before = store.current_leaf();
        // A key that does not match the certificate.
        let other = dir.path().join("other");
        ensure_self_signed(&other.join("c.pem"), &other.join("k.pem")).unwrap();
        std::fs::copy(other.join("k.pem"), &key).unwrap();
        assert!(matches!(store.reload(), Err(TlsError::Mismatch { .. })));
        assert_eq!(store.current_leaf(), before);
        // Garbage in the certificate file.
        std::fs::write(&cert, "not a pem").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.current_leaf(), before);
    }

    #[test]
    fn reload_with_a_good_pair_swaps_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        ensure_self_signed(&cert, &key).unwrap();
        let store = CertStore::load(&cert, &key).unwrap();
        let before = store.current_leaf();
        std::fs::remove_file(&cert).unwrap();
        std::fs::remove_file(&key).unwrap();
        ensure_self_signed(&cert, &key).unwrap();
        store.reload().unwrap();
        assert_ne!(store.current_leaf(), before);
    }
}
