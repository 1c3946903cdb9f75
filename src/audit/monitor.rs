//! `urna monitor`: follows a live log checkpoint by checkpoint, as an observer does during
//! voting, and alarms the moment the log misbehaves.
//!
//! Each poll: fetch the checkpoint and verify its signature; prove from the tiles that it
//! extends the last one verified (a smaller one is a rollback, one of the same size with
//! another root a fork); then read only the new entries — decode, signature, leaf hash
//! against the authenticated level-0 tiles — and apply the election's rules to them through
//! the server's own state machine ([`VoterStates::replay`]), resumed from the saved
//! per-voter state rather than rebuilt from the first entry. Only a poll that passed every
//! check advances the state, which is then written atomically (temp file, fsync, rename,
//! directory fsync): a monitor killed at any moment restarts from the last checkpoint it
//! verified.
//!
//! Peers (`--peer`) are other observers' views of the same log: their state files, kept
//! checkpoints, or their servers' URLs. Two signed checkpoints of one size with different
//! roots, or one that the other does not extend, are a split view: the log showed
//! different histories to different observers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::check::prepare_bundle;
use super::fetch::Source;
use super::mirror::write_atomic;
use super::receipt::{verify_checkpoint, CheckpointBody, ReceiptError};
use super::tiled::{
    current_checkpoint, get_bundle, leaf_hashes, prove_consistent, TiledError, MAX_LEAVES_PER_READ,
};
use crate::ballot::{Entry, Manifest, Roll, VoterId, VoterStates};
use crate::log::tiles::TILE_WIDTH;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Largest state or checkpoint file read from a peer or from disk: a state file holds one
/// short line per voter who voted (~100 bytes), so this covers a roll of a few million.
pub const MAX_STATE_BYTES: u64 = 1 << 30;

/// A check the log failed. `check` is a stable code (docs/AUDITING.md lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub check: &'static str,
    /// The entry concerned, if the check is about one.
    pub index: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every message about an entry starts with "entry N": the index is said once.
        write!(f, "ALARM {}: {}", self.check, self.message)
    }
}

/// Why a poll did not advance.
#[derive(Debug)]
pub enum PollError {
    /// The log failed a check.
    Alarm(Alarm),
    /// The poll could not complete (transport, timeouts, the local state file): proves
    /// nothing about the log.
    Incomplete(String),
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollError::Alarm(a) => a.fmt(f),
            PollError::Incomplete(m) => write!(f, "poll incomplete: {m}"),
        }
    }
}

fn alarm(check: &'static str, index: Option<u64>, message: impl Into<String>) -> PollError {
    PollError::Alarm(Alarm {
        check,
        index,
        message: message.into(),
    })
}

impl From<TiledError> for PollError {
    fn from(e: TiledError) -> Self {
        let m = e.to_string();
        match e {
            TiledError::Fetch { .. } | TiledError::Checkpoint(ReceiptError::Key(_)) => {
                PollError::Incomplete(m)
            }
            TiledError::Checkpoint(_) => alarm("checkpoint-signature", None, m),
            TiledError::Rollback { .. } => alarm("rollback", None, m),
            TiledError::Fork { .. } => alarm("fork", None, m),
            TiledError::Inconsistent { .. } => alarm("consistency", None, m),
            TiledError::Tiles { .. } => alarm("tiles", None, m),
            TiledError::NotServed { .. } => alarm("not-served", None, m),
            TiledError::Entry { index, .. } => alarm("entry", Some(index), m),
        }
    }
}

/// The state file: what a restarted monitor needs to go on where it stopped.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// Format version (1).
    version: u32,
    /// The last checkpoint verified, the signed note verbatim.
    checkpoint: String,
    /// Entry 0 (the manifest), standard base64, once seen.
    manifest: Option<String>,
    /// Every voter with a ballot logged: roll position, last seq, its index, its digest
    /// (hex). Enough to apply the rules to the next entries ([`VoterStates::record`]).
    voters: Vec<(u32, u64, u64, String)>,
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub previous_size: Option<u64>,
    pub size: u64,
    /// Base64, as in the checkpoint.
    pub root: String,
    pub new_entries: u64,
}

/// A monitor's verified view of the log.
pub struct Monitor {
    roll: Arc<Roll>,
    verifier_key: String,
    state_path: PathBuf,
    /// The last checkpoint verified and its note.
    verified: Option<(CheckpointBody, Vec<u8>)>,
    /// Entry 0 and the rules state, once entry 0 was checked.
    manifest: Option<Manifest>,
    states: Option<VoterStates>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_STATE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_STATE_BYTES} bytes"
        )));
    }
    Ok(out)
}

impl Monitor {
    /// A monitor of the log signed by `verifier_key` under `roll`, resumed from
    /// `state_path` if that file exists.
    pub fn open(
        roll: Arc<Roll>,
        verifier_key: &str,
        state_path: PathBuf,
    ) -> Result<Monitor, String> {
        let mut m = Monitor {
            roll,
            verifier_key: verifier_key.trim().to_owned(),
            state_path,
            verified: None,
            manifest: None,
            states: None,
        };
        m.reload()?;
        Ok(m)
    }

    /// The last checkpoint verified.
    pub fn verified(&self) -> Option<&CheckpointBody> {
        self.verified.as_ref().map(|(c, _)| c)
    }

    /// Goes back to what the state file says (after a poll that failed half-way, whose
    /// partial progress must not count).
    pub fn reload(&mut self) -> Result<(), String> {
        self.verified = None;
        self.manifest = None;
        self.states = None;
        let p = self.state_path.clone();
        let bytes = match read_bounded(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("state file {}: {e}", p.display())),
        };
        let bad = |m: String| format!("state file {}: {m}", p.display());
        let s: StateFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a monitor's state: {e}")))?;
        if s.version != 1 {
            return Err(bad(format!("version {} (this monitor reads 1)", s.version)));
        }
        let note = s.checkpoint.into_bytes();
        let body = verify_checkpoint(&note, &self.verifier_key).map_err(|e| {
            bad(format!(
                "its checkpoint does not verify under this key ({e}): the state of another log?"
            ))
        })?;
        if let Some(m) = &s.manifest {
            let bytes = base64::Engine::decode(&B64, m)
                .map_err(|_| bad("manifest is not base64".into()))?;
            let manifest = Manifest::decode(&bytes).map_err(|e| bad(format!("manifest: {e}")))?;
            if manifest.roll_sha256 != self.roll.sha256() {
                return Err(bad(format!(
                    "built with a roll of SHA-256 {}, not this roll's {}",
                    hex(&manifest.roll_sha256),
                    hex(&self.roll.sha256())
                )));
            }
            let mut states = VoterStates::new(self.roll.clone(), manifest.election.clone());
            states
                .replay(0, &Entry::Manifest(manifest.clone()))
                .map_err(|e| bad(e.to_string()))?;
            for (id, seq, index, digest) in &s.voters {
                let digest = unhex16(digest).ok_or_else(|| bad("a malformed digest".into()))?;
                if (*id as usize) >= self.roll.len() || *seq == 0 || *index >= body.size {
                    return Err(bad(format!("voter {id}: out of range")));
                }
                states.record(VoterId(*id), *seq, digest, *index);
            }
            self.manifest = Some(manifest);
            self.states = Some(states);
        } else if body.size > 0 {
            return Err(bad("a non-empty checkpoint without its manifest".into()));
        }
        self.verified = Some((body, note));
        Ok(())
    }

    fn save(&self) -> Result<(), String> {
        let Some((_, note)) = &self.verified else {
            return Ok(());
        };
        let checkpoint = String::from_utf8(note.clone())
            .map_err(|_| "the checkpoint is not UTF-8".to_owned())?;
        let manifest = match &self.manifest {
            Some(m) => Some(base64::Engine::encode(
                &B64,
                m.encode().map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let mut voters = Vec::new();
        if let Some(states) = &self.states {
            // Bounded by the roll's size.
            for id in 0..self.roll.len() as u32 {
                if let Some(r) = states.last(VoterId(id)) {
                    voters.push((id, r.seq, r.index, hex(&r.digest)));
                }
            }
        }
        let s = StateFile {
            version: 1,
            checkpoint,
            manifest,
            voters,
        };
        let bytes = serde_json::to_vec(&s).map_err(|e| e.to_string())?;
        write_atomic(&self.state_path, &bytes)
            .map_err(|e| format!("writing {}: {e}", self.state_path.display()))
    }

    /// One poll of `src`. On `Ok` the new checkpoint is verified and saved; on an alarm
    /// nothing is saved and the in-memory state is back to the saved one.
    pub async fn poll(&mut self, src: &Source) -> Result<PollReport, PollError> {
        let result = self.poll_inner(src).await;
        if result.is_err() {
            self.reload().map_err(PollError::Incomplete)?;
        }
        result
    }

    async fn poll_inner(&mut self, src: &Source) -> Result<PollReport, PollError> {
        let (cp, note) = current_checkpoint(src, &self.verifier_key).await?;
        let previous = self.verified.as_ref().map(|(c, _)| c.clone());
        let from = match &previous {
            Some(old) => {
                prove_consistent(src, old, &cp).await?;
                old.size
            }
            None => 0,
        };
        // The new entries, up to MAX_LEAVES_PER_READ at a time: their leaf hashes are read
        // from the tiles in one go (the tiles above level 0 that authenticate them are
        // fetched once per chunk, not once per bundle), then each bundle is checked.
        let mut chunk_lo = from;
        // Bounded: each turn advances by at least one entry, up to the checkpoint's size.
        while chunk_lo < cp.size {
            let chunk_hi = cp
                .size
                .min((chunk_lo / TILE_WIDTH) * TILE_WIDTH + MAX_LEAVES_PER_READ);
            let leaves = leaf_hashes(src, chunk_lo, chunk_hi, &cp).await?;
            let mut bundle = chunk_lo / TILE_WIDTH;
            while bundle * TILE_WIDTH < chunk_hi {
                let start = bundle * TILE_WIDTH;
                // At most 256, so the cast is exact.
                let width = (cp.size - start).min(TILE_WIDTH) as u32;
                self.check_bundle(src, bundle, width, chunk_lo, chunk_hi, &leaves)
                    .await?;
                bundle += 1;
            }
            chunk_lo = chunk_hi;
        }
        self.verified = Some((cp.clone(), note));
        self.save().map_err(PollError::Incomplete)?;
        Ok(PollReport {
            previous_size: previous.map(|p| p.size),
            size: cp.size,
            root: base64::Engine::encode(&B64, cp.root),
            new_entries: cp.size - from,
        })
    }

    /// Checks entries `lo.max(start)..hi.min(end)` of bundle `bundle` (of `width` entries):
    /// each decodes, its signature verifies, it hashes to its leaf in `leaves` (those of
    /// entries `lo..hi`, authenticated), and it obeys the rules after every earlier one.
    async fn check_bundle(
        &mut self,
        src: &Source,
        bundle: u64,
        width: u32,
        lo: u64,
        hi: u64,
        leaves: &[super::proof::Digest32],
    ) -> Result<(), PollError> {
        let start = bundle * TILE_WIDTH;
        let bytes = get_bundle(src, bundle, width).await?;
        // Without the level-0 tile the bundle's leaves are its entries' own hashes: each is
        // compared below with the leaf the signed tree holds (from the authenticated tiles).
        let prepared = prepare_bundle(bundle, width, Some(&bytes), None);
        if let Some(v) = prepared.violations.first() {
            use super::report::ViolationKind as K;
            let check = match v.kind {
                K::BadSignature => "signature",
                K::ManifestMissing
                | K::RollHashMismatch
                | K::ManifestKeyMismatch
                | K::ExtraManifest => "manifest",
                _ => "entry",
            };
            return Err(alarm(check, v.index, v.to_string()));
        }
        let Some(own) = prepared.leaves.as_deref() else {
            return Err(alarm(
                "entry",
                Some(start),
                format!("bundle {bundle}: its entries give no leaf hashes"),
            ));
        };
        let first = lo.max(start);
        let last = hi.min(start + u64::from(width));
        for i in first..last {
            let k = (i - start) as usize;
            if own.get(k) != Some(&leaves[(i - lo) as usize]) {
                return Err(alarm(
                    "entry",
                    Some(i),
                    format!(
                        "entry {i}: the bundle's bytes do not hash to the leaf the signed tree holds at this index"
                    ),
                ));
            }
            // With no violation every entry of the bundle is there, in order.
            let Some((_, entry)) = prepared.entries.get(k).filter(|(j, _)| *j == i) else {
                return Err(alarm(
                    "entry",
                    Some(i),
                    format!("entry {i}: not in its bundle"),
                ));
            };
            self.rule(i, entry)?;
        }
        Ok(())
    }

    /// The election's rules on entry `index`, in log order after every earlier one.
    fn rule(&mut self, index: u64, entry: &Entry) -> Result<(), PollError> {
        match (&mut self.states, entry) {
            (None, Entry::Manifest(m)) if index == 0 => {
                if m.roll_sha256 != self.roll.sha256() {
                    return Err(alarm(
                        "manifest",
                        Some(0),
                        format!(
                            "manifest (entry 0): roll SHA-256 {} is not the roll file's {}",
                            hex(&m.roll_sha256),
                            hex(&self.roll.sha256())
                        ),
                    ));
                }
                if m.log_verifier_key != self.verifier_key {
                    return Err(alarm(
                        "manifest",
                        Some(0),
                        format!(
                            "manifest (entry 0): names log key {:?}, not the one monitored with {:?}",
                            m.log_verifier_key, self.verifier_key
                        ),
                    ));
                }
                let mut states = VoterStates::new(self.roll.clone(), m.election.clone());
                states
                    .replay(0, entry)
                    .map_err(|e| alarm("manifest", Some(0), e.to_string()))?;
                self.manifest = Some(m.clone());
                self.states = Some(states);
                Ok(())
            }
            (Some(states), Entry::Ballot(lb)) => states.replay(index, entry).map_err(|e| {
                let reason = match e {
                    crate::ballot::ReplayError::Rule { reason, .. } => reason,
                    other => other.to_string(),
                };
                alarm(
                    "rule",
                    Some(index),
                    format!(
                        "entry {index}: voter {} {} seq {}: {reason}",
                        lb.ballot.alg(),
                        lb.ballot.voter_text(),
                        lb.ballot.seq()
                    ),
                )
            }),
            _ => Err(alarm(
                "manifest",
                Some(index),
                format!("entry {index}: only entry 0 is the manifest, and it must be"),
            )),
        }
    }
}

/// Another observer's view of the log.
pub enum Peer {
    /// Another monitor's state file, or a checkpoint note someone kept.
    File(PathBuf),
    /// Another server or mirror of the log (`<url>log/checkpoint` and its tiles).
    Url(Box<Source>),
}

impl Peer {
    pub fn describe(&self) -> String {
        match self {
            Peer::File(p) => p.display().to_string(),
            Peer::Url(s) => s.describe(),
        }
    }
}

/// What comparing with a peer found, short of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerVerdict {
    /// The two checkpoints are of one tree (one is a prefix of the other).
    Consistent { peer_size: u64 },
    /// The peer is ahead and its tree cannot be checked against ours yet (the tiles for its
    /// size are not served here yet); compared again at the next poll.
    Ahead { peer_size: u64 },
    /// The peer's file or URL gave nothing usable (unreadable, not signed by the log's
    /// key): it proves nothing either way.
    Unusable(String),
}

/// The checkpoint note in a peer file: a monitor's state file or a bare note.
fn peer_note(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    struct Only {
        checkpoint: String,
    }
    if bytes.first() == Some(&b'{') {
        let s: Only = serde_json::from_slice(&bytes)
            .map_err(|e| format!("not a monitor's state file: {e}"))?;
        Ok(s.checkpoint.into_bytes())
    } else {
        Ok(bytes)
    }
}

/// Compares our verified checkpoint `ours` (from `src`) with a peer's.
pub async fn compare_peer(
    src: &Source,
    verifier_key: &str,
    ours: &CheckpointBody,
    peer: &Peer,
) -> Result<PeerVerdict, PollError> {
    let theirs = match peer {
        Peer::File(p) => {
            let note = match read_bounded(p)
                .map_err(|e| e.to_string())
                .and_then(peer_note)
            {
                Ok(n) => n,
                Err(e) => return Ok(PeerVerdict::Unusable(e)),
            };
            match verify_checkpoint(&note, verifier_key) {
                Ok(b) => b,
                Err(e) => {
                    return Ok(PeerVerdict::Unusable(format!(
                        "its checkpoint does not verify under the log's key: {e}"
                    )))
                }
            }
        }
        Peer::Url(s) => match current_checkpoint(s, verifier_key).await {
            Ok((b, _)) => b,
            Err(TiledError::Fetch { reason, .. }) => return Ok(PeerVerdict::Unusable(reason)),
            Err(e) => return Ok(PeerVerdict::Unusable(e.to_string())),
        },
    };
    let split = |m: String| {
        alarm(
            "split-view",
            None,
            format!(
                "peer {} holds a checkpoint of size {} that {m}, this monitor holds size {}",
                peer.describe(),
                theirs.size,
                ours.size
            ),
        )
    };
    if theirs.size == ours.size {
        return if theirs.root == ours.root {
            Ok(PeerVerdict::Consistent {
                peer_size: theirs.size,
            })
        } else {
            Err(split("has another root".into()))
        };
    }
    // The smaller must be a prefix of the larger, proved from tiles authenticated
    // against the larger's root: ours from our source; the peer's from its URL if it has
    // one, else from our source (which then must serve the peer's tree).
    let (old, new, tiles) = if theirs.size < ours.size {
        (&theirs, ours, src)
    } else {
        match peer {
            Peer::Url(s) => (ours, &theirs, &**s),
            Peer::File(_) => (ours, &theirs, src),
        }
    };
    match prove_consistent(tiles, old, new).await {
        Ok(()) => Ok(PeerVerdict::Consistent {
            peer_size: theirs.size,
        }),
        Err(TiledError::Inconsistent { .. }) => Err(split("is not consistent with ours".into())),
        // Tiles that do not hash to the larger root: at that size the tiles served here
        // are of another tree than the one the peer was shown.
        Err(TiledError::Tiles { reason, .. }) => Err(split(format!(
            "the tiles served here do not match ({reason})"
        ))),
        Err(TiledError::NotServed { .. }) if theirs.size > ours.size => Ok(PeerVerdict::Ahead {
            peer_size: theirs.size,
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_name_the_check_and_the_entry() {
        let a = Alarm {
            check: "rule",
            index: Some(7),
            message: "entry 7: stale seq".into(),
        };
        assert_eq!(a.to_string(), "ALARM rule: entry 7: stale seq");
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = [0xabu8; 16];
        assert_eq!(unhex16(&hex(&d)), Some(d));
        assert_eq!(unhex16("zz"), None);
        assert_eq!(unhex16(&"é".repeat(16)), None);
    }

    #[test]
    fn a_peer_file_is_a_state_file_or_a_bare_note() {
        let note = b"o\n1\nAAA=\n\n\xe2\x80\x94 o x\n".to_vec();
        assert_eq!(peer_note(note.clone()).unwrap(), note);
        let state = serde_json::json!({"version": 1, "checkpoint": "c", "voters": []});
        assert_eq!(peer_note(state.to_string().into_bytes()).unwrap(), b"c");
        assert!(peer_note(b"{oops".to_vec()).is_err());
    }
}
