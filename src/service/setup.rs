//! Opening the service: on first start, the demo electorate and the log key; then the
//! roll, the voter state rebuilt from the log, the manifest (entry 0), and the pool.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use base64::Engine as _;
use bytes::Bytes;

use super::gate::BallotGate;
use super::Service;
use crate::ballot::keys::{write_electorate, AlgMix};
use crate::ballot::pool::VerifierPool;
use crate::ballot::Ed25519Backend;
use crate::ballot::{Manifest, Roll, VoterStates};
use crate::config::{Config, ConfigError};
use crate::log::{Log, LogKey};

/// Why the service could not open. Each names the file or the check at fault.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("voter roll {path} does not exist (set election.demo_voters only for a demo)")]
    NoRoll { path: PathBuf },
    #[error("generating the demo electorate: {0}")]
    Electorate(String),
    #[error("voter roll: {0}")]
    Roll(#[from] crate::ballot::RollError),
    #[error("log key {path}: {source}")]
    Key {
        path: PathBuf,
        source: crate::log::KeyError,
    },
    #[error("log key {path} is named {found:?}, but the log's origin is {expected:?}")]
    KeyName {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("manifest: {0}")]
    Manifest(String),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// Entry 0 pins the election, the roll and the log key for the life of the log.
    #[error("the log's manifest (entry 0) does not match this server: {}", join(.0))]
    ManifestMismatch(Vec<crate::ballot::Difference>),
    #[error("entry 0 of the log is not this server's manifest: {0}")]
    ForeignLog(String),
}

fn join(differences: &[crate::ballot::Difference]) -> String {
    let all: Vec<String> = differences.iter().map(|d| d.to_string()).collect();
    all.join("; ")
}

/// What [`open`] made, and where things are (printed at startup).
pub struct Opened {
    pub service: Arc<Service>,
    /// The log's writer thread. It ends on shutdown, or when a write or fsync failed: then
    /// the process must exit and recover from what is durable.
    pub writer: JoinHandle<()>,
    pub roll: PathBuf,
    /// Set when a demo electorate was generated now: the voters' secret keys.
    pub demo_keys: Option<PathBuf>,
    pub log_dir: PathBuf,
    pub log_key: PathBuf,
    /// The verifier key as a file (`log.vkey` beside the key): what operators publish.
    pub verifier_key_file: PathBuf,
    pub verifier_key: String,
    pub voters: usize,
    pub log_size: u64,
}

/// Opens everything behind the edge. Blocking (roll load, log recovery): call it before
/// serving, or in `spawn_blocking`.
pub fn open(config: &Config) -> Result<Opened, SetupError> {
    open_with(config, None)
}

/// [`open`], with the roll already loaded (by the preflight check) when `roll` is given.
/// Generates what a first start needs (the demo electorate, the log key): call it only
/// once the listeners are bound, so that a server that cannot serve leaves nothing behind.
pub fn open_with(config: &Config, roll: Option<Arc<Roll>>) -> Result<Opened, SetupError> {
    let storage = &config.storage.dir;
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| SetupError::Io { what, path, source }
    };
    std::fs::create_dir_all(storage).map_err(io("creating storage dir", storage))?;

    let roll_path = config.election.roll.clone();
    let (roll, demo_keys) = match roll {
        Some(roll) => (roll, None),
        None => {
            let demo_keys = if roll_path.exists() {
                None
            } else {
                let count = config.election.demo_voters.ok_or(SetupError::NoRoll {
                    path: roll_path.clone(),
                })?;
                Some(generate_demo(&roll_path, count.get().into())?)
            };
            (Arc::new(Roll::load(&roll_path)?), demo_keys)
        }
    };

    let election = config.election()?;
    let origin = config.log_origin();
    let key_path = config.log_key_path();
    let key = if key_path.exists() {
        LogKey::from_file(&key_path)
    } else {
        LogKey::generate_file(&origin, &key_path)
    }
    .map_err(|source| SetupError::Key {
        path: key_path.clone(),
        source,
    })?;
    if key.name() != origin {
        return Err(SetupError::KeyName {
            path: key_path,
            found: key.name().to_owned(),
            expected: origin,
        });
    }
    let verifier_key = key.verifier_key().to_owned();
    // The public half, beside the key, for operators to publish and voters to verify with.
    let vkey_path = key_path.with_extension("vkey");
    std::fs::write(&vkey_path, format!("{verifier_key}\n"))
        .map_err(io("writing the verifier key", &vkey_path))?;
    let ours = Manifest {
        election: election.clone(),
        roll_sha256: roll.sha256(),
        log_verifier_key: verifier_key.clone(),
    };
    let manifest = ours
        .encode()
        .map_err(|e| SetupError::Manifest(e.to_string()))?;

    let states = Arc::new(RwLock::new(
        VoterStates::new(roll.clone(), election.clone())
            .with_max_ballots_per_voter(config.election.max_ballots_per_voter.get()),
    ));
    let gate = BallotGate {
        states: states.clone(),
    };
    let log_config = config.log_config();
    let log_dir = log_config.dir.clone();
    let genesis = manifest.clone();
    let (log, writer) = Log::open(log_config, key, gate, move || genesis)?;
    // Replay checked the election and the roll hash; the exact bytes also pin the log key.
    let logged = log
        .entry(0)
        .map_err(|e| SetupError::ForeignLog(e.to_string()))?;
    if logged != manifest {
        let theirs =
            Manifest::decode(&logged).map_err(|e| SetupError::ForeignLog(e.to_string()))?;
        let differences = theirs.differences(&ours);
        if differences.is_empty() {
            return Err(SetupError::ForeignLog("its bytes differ".into()));
        }
        return Err(SetupError::ManifestMismatch(differences));
    }

    let threads = config
        .signatures
        .threads
        .map(|n| n.get())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = VerifierPool::start(
        threads,
        config.signatures.queue_depth.get(),
        config.signatures.max_batch.get(),
    )
    .map_err(io("starting verification threads", Path::new("-")))?;
    let stages = super::Stages::new();
    // After Stages::new, which installs the recorder the gauge must bind to.
    let backend = Ed25519Backend::detect();
    metrics::gauge!("urna_ed25519_backend", "backend" => backend.label()).set(1.0);

    let election_json = election_json(config, &roll, &manifest, &verifier_key, &origin);
    let log_size = log.size();
    let service = Arc::new(Service {
        limits: config.ballot_limits(),
        states,
        pool,
        log,
        election_json,
        in_flight: AtomicUsize::new(0),
        retry_after_s: config.limits.overloaded_retry_after_s.into(),
        stages,
    });
    Ok(Opened {
        service,
        writer,
        roll: roll_path,
        demo_keys,
        log_dir,
        log_key: config.log_key_path(),
        verifier_key_file: vkey_path,
        verifier_key,
        voters: roll.len(),
        log_size,
    })
}

/// Writes a demo electorate: the roll, and `voters.jsonl` (secret keys) beside it.
fn generate_demo(roll_path: &Path, count: u64) -> Result<PathBuf, SetupError> {
    let keys_path = roll_path.with_file_name("voters.jsonl");
    if let Some(dir) = roll_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
            what: "creating",
            path: dir.to_owned(),
            source,
        })?;
    }
    let failed = |p: &Path| {
        let path = p.to_owned();
        move |source| SetupError::Io {
            what: "creating",
            path,
            source,
        }
    };
    // Write the roll under a temporary name and rename it last: a crash mid-way leaves no
    // half roll that a restart would take for the real one.
    let tmp = roll_path.with_extension("tmp");
    let mut roll = BufWriter::new(File::create(&tmp).map_err(failed(&tmp))?);
    let mut keys = BufWriter::new(create_secret_file(&keys_path).map_err(failed(&keys_path))?);
    write_electorate(count, AlgMix::Mixed, &mut roll, &mut keys)
        .map_err(|e| SetupError::Electorate(e.to_string()))?;
    drop(roll);
    std::fs::rename(&tmp, roll_path).map_err(|source| SetupError::Io {
        what: "renaming",
        path: tmp,
        source,
    })?;
    Ok(keys_path)
}

/// Creates (or truncates) a file only its owner may read: voters' secret keys. An existing
/// file keeps its inode but loses any wider mode it had.
pub fn create_secret_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// `GET /v1/election`: what a voting client and an auditor need before anything else.
fn election_json(
    config: &Config,
    roll: &Roll,
    manifest: &[u8],
    verifier_key: &str,
    origin: &str,
) -> Bytes {
    let hex: String = roll.sha256().iter().map(|b| format!("{b:02x}")).collect();
    let e = &config.election;
    let rfc3339 = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let body = serde_json::json!({
        "election": e.id,
        "protocol": "urna/ballot/v1",
        "revote": e.revote.as_str(),
        "opens_at": rfc3339(e.opens_at),
        "closes_at": rfc3339(e.closes_at),
        "max_payload_bytes": e.max_payload_bytes.get(),
        "max_ballots_per_voter": e.max_ballots_per_voter.get(),
        "voters": roll.len(),
        "roll_sha256": hex,
        "log": {
            "origin": origin,
            "verifier_key": verifier_key,
            "checkpoint": "/log/checkpoint",
            "tiles": "/log/tile/",
        },
        "manifest": base64::engine::general_purpose::STANDARD.encode(manifest),
    });
    Bytes::from(body.to_string())
}
