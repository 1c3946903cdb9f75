//! `urna mirror`: an incremental, resumable, verified copy of a log's public files
//! (checkpoint, hash tiles, entry bundles) in the tlog-tiles layout `urna audit --dir`
//! reads.
//!
//! The promise is that a mirror directory only ever holds a log that verified: a server
//! that serves a forged, rolled-back or forked log cannot make the mirror lose the good
//! checkpoint it holds. So:
//! - the new checkpoint's signature is checked first, and it must not be smaller than the
//!   mirror's (or of its size with another root);
//! - every entry bundle is hashed into the tree ([`super::tree::TreeBuilder`]), every hash
//!   tile fetched is compared with the one the entries determine, the tree must pass
//!   through the mirror's checkpoint root at its size (consistency, recomputed rather than
//!   proved) and end at the new checkpoint's root;
//! - new files are written under `<dir>/.staging/` while this happens and moved into place
//!   only once all of it passed; the checkpoint is written last. Each write is a temp file,
//!   fsync, rename, and an fsync of the directory, so a crash leaves either the old mirror
//!   or the new one, never a torn file under a name the auditor reads.
//!
//! Full tiles and bundles are immutable: one already in the mirror is never fetched again
//! (its bytes are read locally, hashed, and compared). Partial ones are fetched at the new
//! size, and those of the old size are removed once the new checkpoint is in place.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::check::{bundle_path, bundles};
use super::fetch::Source;
use super::proof::leaf_hash;
use super::receipt::{verify_checkpoint, CheckpointBody};
use super::run::{MAX_BUNDLE_BYTES, MAX_CHECKPOINT_BYTES, MAX_TILE_BYTES};
use super::tiled::{current_checkpoint, get_bundle, get_tile, TiledError};
use super::tree::{DueTile, TreeBuilder};
use crate::log::tiles::{Resource, TILE_WIDTH};

/// Where new files wait until the whole new tree verified.
const STAGING: &str = ".staging";

/// Why a mirror run stopped. Nothing in the mirror was replaced in any case.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The log failed a check: the mirror keeps what it had.
    #[error("{0}")]
    Log(String),
    /// The files could not be fetched (transport, timeouts): proves nothing about the log.
    #[error("{0}")]
    Fetch(String),
    /// The mirror directory itself is unusable or not a mirror of this log.
    #[error("{0}")]
    Local(String),
}

impl From<TiledError> for MirrorError {
    fn from(e: TiledError) -> Self {
        if e.is_log_fault() {
            MirrorError::Log(e.to_string())
        } else {
            MirrorError::Fetch(e.to_string())
        }
    }
}

/// What a mirror run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorReport {
    /// The mirror's checkpoint before the run, if it had one.
    pub previous_size: Option<u64>,
    pub size: u64,
    /// Base64, as in the checkpoint.
    pub root: String,
    /// Files fetched, verified and written.
    pub written: u64,
    /// Full files already in the mirror, re-hashed locally and kept.
    pub kept: u64,
}

/// What to mirror.
pub struct MirrorRequest<'a> {
    pub source: &'a Source,
    pub dir: PathBuf,
    /// The log's verifier key text.
    pub verifier_key: String,
    /// Say on stderr how far the run has got, at most this often (`None`: never).
    pub progress_every: Option<Duration>,
}

fn local(what: &str, path: &Path, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Local(format!("{what} {}: {e}", path.display()))
}

/// Reads `path` if it exists, at most `max` bytes (more is an error).
fn read_local(path: &Path, max: usize) -> Result<Option<Vec<u8>>, MirrorError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(local("reading", path, e)),
        Ok(m) if m.len() > max as u64 => {
            return Err(local("reading", path, format!("larger than {max} bytes")))
        }
        Ok(_) => {}
    }
    std::fs::read(path)
        .map(Some)
        .map_err(|e| local("reading", path, e))
}

/// Writes `bytes` to `path` durably: a temp file beside it, fsync, rename over `path`,
/// fsync of the directory (the rename is only durable once the directory is). A crash at
/// any point leaves the old file or the new one under `path`, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A bare file name's parent is "", which cannot be opened to fsync: it is ".".
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The staging area of one run: files verified as far as they go alone, not yet in place.
struct Staging {
    root: PathBuf,
    /// Paths after `/log/`, in the order they were staged (bundles before the tiles that
    /// hash them).
    files: Vec<String>,
}

impl Staging {
    fn new(dir: &Path) -> Result<Staging, MirrorError> {
        let root = dir.join(STAGING);
        // Left by a run that stopped before publishing: nothing in it was in place.
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| local("clearing", &root, e))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| local("creating", &root, e))?;
        Ok(Staging {
            root,
            files: Vec::new(),
        })
    }

    fn stage(&mut self, path: &str, bytes: &[u8]) -> Result<(), MirrorError> {
        let to = self.root.join(path);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| local("creating", p, e))?;
        }
        let mut f = std::fs::File::create(&to).map_err(|e| local("writing", &to, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| local("writing", &to, e))?;
        self.files.push(path.to_owned());
        Ok(())
    }

    /// Moves every staged file into place and makes the renames durable. The checkpoint is
    /// the caller's to write after this.
    fn publish(self, dir: &Path) -> Result<(), MirrorError> {
        let mut dirs = BTreeSet::new();
        for path in &self.files {
            let (from, to) = (self.root.join(path), dir.join(path));
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).map_err(|e| local("creating", p, e))?;
                dirs.insert(p.to_owned());
            }
            std::fs::rename(&from, &to).map_err(|e| local("moving into place", &to, e))?;
        }
        // Durable before the checkpoint names them: a checkpoint must never point at files
        // a crash could take back.
        for d in &dirs {
            sync_dir(d).map_err(|e| local("syncing", d, e))?;
        }
        let _ = std::fs::remove_dir_all(&self.root);
        Ok(())
    }
}

/// The paths of the partial tiles and bundle of a tree of `size` leaves.
fn partial_paths(size: u64) -> Vec<String> {
    let mut out = Vec::new();
    let w = size % TILE_WIDTH;
    if w != 0 {
        out.push(bundle_path(size / TILE_WIDTH, w as u32));
    }
    let mut count = size;
    for level in 0..super::tree::TILE_LEVELS as u8 {
        if count == 0 {
            break;
        }
        let w = count % TILE_WIDTH;
        if w != 0 {
            out.push(
                Resource::Tile {
                    level,
                    index: count / TILE_WIDTH,
                    width: w as u32,
                }
                .path(),
            );
        }
        count /= TILE_WIDTH;
    }
    out
}

/// Splits an entry bundle into its entries; `None` if it is malformed.
fn split_bundle(mut b: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    // Bounded: each turn consumes at least the 2-byte length.
    while !b.is_empty() {
        let [x, y, rest @ ..] = b else { return None };
        let len = usize::from(u16::from_be_bytes([*x, *y]));
        if rest.len() < len {
            return None;
        }
        out.push(&rest[..len]);
        b = &rest[len..];
    }
    Some(out)
}

fn b64(h: &[u8; 32]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, h)
}

/// Runs one mirror pass: brings `dir` up to the source's current checkpoint, or leaves it
/// as it was.
pub async fn mirror(req: MirrorRequest<'_>) -> Result<MirrorReport, MirrorError> {
    let MirrorRequest {
        source: src,
        dir,
        verifier_key,
        progress_every,
    } = req;
    let (new, note) = current_checkpoint(src, &verifier_key).await?;
    let cp_path = dir.join("checkpoint");
    let old: Option<CheckpointBody> = match read_local(&cp_path, MAX_CHECKPOINT_BYTES)? {
        None => None,
        Some(bytes) => Some(verify_checkpoint(&bytes, &verifier_key).map_err(|e| {
            MirrorError::Local(format!(
                "{} does not verify under this key ({e}): not a mirror of this log; nothing was changed",
                cp_path.display()
            ))
        })?),
    };
    if let Some(o) = &old {
        if o.size > new.size {
            return Err(TiledError::Rollback {
                old: o.size,
                new: new.size,
            }
            .into());
        }
        if o.size == new.size {
            if o.root != new.root {
                return Err(TiledError::Fork { size: o.size }.into());
            }
            return Ok(MirrorReport {
                previous_size: Some(o.size),
                size: new.size,
                root: b64(&new.root),
                written: 0,
                kept: 0,
            });
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| local("creating", &dir, e))?;
    let mut staging = Staging::new(&dir)?;
    let mut tree = TreeBuilder::new();
    let (mut written, mut kept) = (0u64, 0u64);
    let started = Instant::now();
    let mut said = started;
    let log_fault = |m: String| MirrorError::Log(m);

    // A tile the entries determine: kept if the mirror has it (and it matches), else
    // fetched, compared and staged.
    async fn due_tile(
        src: &Source,
        dir: &Path,
        staging: &mut Staging,
        t: &DueTile,
        written: &mut u64,
        kept: &mut u64,
    ) -> Result<(), MirrorError> {
        let path = t.path();
        let full = t.hashes.len() as u64 == TILE_WIDTH;
        if full {
            if let Some(bytes) = read_local(&dir.join(&path), MAX_TILE_BYTES)? {
                t.check(&bytes).map_err(|reason| {
                    MirrorError::Local(format!(
                        "{}: {reason}: the mirror's own file is damaged; nothing was changed",
                        dir.join(&path).display()
                    ))
                })?;
                *kept += 1;
                return Ok(());
            }
        }
        let fetched = get_tile(src, t.level, t.index, t.hashes.len() as u32).await?;
        t.check(&fetched)
            .map_err(|reason| MirrorError::Log(format!("{path}: {reason}")))?;
        staging.stage(&path, &fetched)?;
        *written += 1;
        Ok(())
    }

    for (index, width) in bundles(new.size) {
        let path = bundle_path(index, width);
        let full = u64::from(width) == TILE_WIDTH;
        let local_bytes = if full {
            read_local(&dir.join(&path), MAX_BUNDLE_BYTES)?
        } else {
            None
        };
        let from_local = local_bytes.is_some();
        let bytes = match local_bytes {
            Some(b) => b,
            None => get_bundle(src, index, width).await?,
        };
        let entries = split_bundle(&bytes)
            .filter(|e| e.len() == width as usize)
            .ok_or_else(|| {
                let m = format!("{path}: not {width} length-prefixed entries");
                if from_local {
                    MirrorError::Local(format!(
                        "{}: the mirror's own file is damaged: {m}",
                        dir.display()
                    ))
                } else {
                    log_fault(m)
                }
            })?;
        let mut due = Vec::new();
        for e in entries {
            due.extend(tree.push(leaf_hash(e)));
            if let Some(o) = &old {
                if o.size == tree.size() && tree.root() != o.root {
                    return Err(log_fault(format!(
                        "the tree does not extend the mirror's checkpoint: the root of its first {} entries is {}, the mirror's checkpoint says {}",
                        o.size,
                        b64(&tree.root()),
                        b64(&o.root)
                    )));
                }
            }
        }
        if from_local {
            kept += 1;
        } else {
            staging.stage(&path, &bytes)?;
            written += 1;
        }
        for t in &due {
            due_tile(src, &dir, &mut staging, t, &mut written, &mut kept).await?;
        }
        if progress_every.is_some_and(|every| said.elapsed() >= every) {
            eprintln!(
                "mirror: {} of {} entries ({} files written, {} kept) in {} s",
                tree.size(),
                new.size,
                written,
                kept,
                started.elapsed().as_secs()
            );
            said = Instant::now();
        }
    }
    for t in tree.partial_tiles() {
        due_tile(src, &dir, &mut staging, &t, &mut written, &mut kept).await?;
    }
    if tree.root() != new.root {
        return Err(log_fault(format!(
            "root recomputed from the {} entries is {}, the checkpoint says {}",
            new.size,
            b64(&tree.root()),
            b64(&new.root)
        )));
    }
    staging.publish(&dir)?;
    // Last: only now does the mirror claim the new tree.
    write_atomic(&cp_path, &note).map_err(|e| local("writing", &cp_path, e))?;
    if let Some(o) = &old {
        let now = partial_paths(new.size);
        for p in partial_paths(o.size) {
            if !now.contains(&p) {
                // Superseded by the full or wider file; an error only leaves a stale file
                // the auditor never reads.
                let _ = std::fs::remove_file(dir.join(p));
            }
        }
    }
    Ok(MirrorReport {
        previous_size: old.map(|o| o.size),
        size: new.size,
        root: b64(&new.root),
        written,
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_paths_name_each_levels_last_tile() {
        assert!(partial_paths(0).is_empty());
        assert_eq!(partial_paths(3), ["tile/entries/000.p/3", "tile/0/000.p/3"]);
        assert_eq!(partial_paths(256), ["tile/1/000.p/1"]);
        assert_eq!(
            partial_paths(70_000),
            [
                "tile/entries/273.p/112",
                "tile/0/273.p/112",
                "tile/1/001.p/17",
                "tile/2/000.p/1"
            ]
        );
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/checkpoint");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        // No temp file left beside it.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn bundles_split_or_are_refused() {
        assert_eq!(split_bundle(&[0, 1, 9, 0, 0]).unwrap(), [&[9u8][..], &[]]);
        assert!(split_bundle(&[0, 2, 9]).is_none());
        assert!(split_bundle(&[0]).is_none());
    }
}
