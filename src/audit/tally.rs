//! The tally-ready set (`urna audit --tally FILE`): for each voter, the one ballot that counts
//! under the election's revote policy, as JSON lines sorted by voter, written atomically, with
//! the file's SHA-256 so two observers compare one line instead of two files.
//!
//! Memory: the counted line of each voter is written to a scratch file beside the result as
//! the audit meets it, and only its (offset, length) is kept, 16 bytes a voter on the roll:
//! a million voters' ballots (~700 bytes each as JSON) would otherwise hold ~700 MB.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::ballot::{LoggedBallot, Roll, VoterId};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One line of the tally file. Field order is the file's.
#[derive(Serialize)]
struct Line<'a> {
    /// `<alg> <key>`, the roll's line for this voter.
    voter: String,
    index: u64,
    seq: u64,
    /// base64url without padding, as in the submission.
    payload: &'a str,
    received_ms: u64,
}

/// The tally file once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyFile {
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Lines (voters with a counted ballot).
    pub voters: u64,
}

/// Collects the counted ballots while the audit runs.
pub struct TallyWriter {
    path: PathBuf,
    scratch_path: Scratch,
    scratch: BufWriter<File>,
    written: u64,
    /// Per voter (by [`VoterId`]): offset and length of their counted line in the scratch
    /// file; length 0 = no ballot counted.
    counted: Vec<(u64, u32)>,
}

impl TallyWriter {
    /// Starts a tally to be written at `path`, for a roll of `voters` voters.
    pub fn create(path: &Path, voters: usize) -> std::io::Result<TallyWriter> {
        let scratch_path = sibling(path, "lines");
        let scratch = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&scratch_path)?;
        Ok(TallyWriter {
            path: path.to_owned(),
            scratch_path: Scratch(scratch_path),
            scratch: BufWriter::with_capacity(1 << 20, scratch),
            written: 0,
            counted: vec![(0, 0); voters],
        })
    }

    /// `ballot`, logged at `index`, is now `voter`'s counted ballot (the rules accepted it:
    /// under `last` a later accepted ballot always has a higher seq and replaces it; under
    /// `none` there is no later accepted one).
    pub fn record(
        &mut self,
        voter: VoterId,
        index: u64,
        ballot: &LoggedBallot,
    ) -> std::io::Result<()> {
        let Some(slot) = self.counted.get_mut(voter.0 as usize) else {
            return Ok(());
        };
        let b = &ballot.ballot;
        let payload = B64URL.encode(b.payload());
        let mut line = serde_json::to_vec(&Line {
            voter: format!("{} {}", b.alg(), b.voter_text()),
            index,
            seq: b.seq(),
            payload: &payload,
            received_ms: ballot.received_ms,
        })?;
        line.push(b'\n');
        self.scratch.write_all(&line)?;
        // A logged entry is at most 65,535 bytes, so its line fits in a u32.
        *slot = (self.written, line.len() as u32);
        self.written += line.len() as u64;
        Ok(())
    }

    /// Writes the file, sorted by voter (algorithm name, then key bytes), atomically: a
    /// temporary file, fsync, rename over `path`, fsync of the directory. An observer never
    /// sees half a tally under the final name.
    pub fn finish(self, roll: &Roll) -> std::io::Result<TallyFile> {
        let scratch = self
            .scratch
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        let mut ids: Vec<u32> = (0..self.counted.len() as u32)
            .filter(|&i| self.counted[i as usize].1 > 0)
            .collect();
        ids.sort_by_key(|&i| {
            roll.key_of(VoterId(i))
                .map(|(alg, key)| (alg.to_string(), key.to_vec()))
        });
        let tmp = sibling(&self.path, "tmp");
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let mut hash = Sha256::new();
        let mut buf = Vec::new();
        for &i in &ids {
            let (at, len) = self.counted[i as usize];
            buf.resize(len as usize, 0);
            scratch.read_exact_at(&mut buf, at)?;
            hash.update(&buf);
            out.write_all(&buf)?;
        }
        let file = out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        // fsync before the rename: the name must never point at bytes that could vanish.
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        drop(scratch);
        drop(self.scratch_path);
        Ok(TallyFile {
            path: self.path,
            sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            voters: ids.len() as u64,
        })
    }
}

/// The scratch file's path: removed when dropped, so the scratch never outlives the run,
/// whether the audit finished or stopped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `<path>.<what>.<pid>`, beside `path` (same file system, so the rename is atomic).
fn sibling(path: &Path, what: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}.{}", std::process::id()));
    path.with_file_name(name)
}
