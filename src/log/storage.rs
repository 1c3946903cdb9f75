//! The store's file I/O, behind a small trait so tests can swap in a disk that loses power
//! (see [`super::sim`]). The real backend is a directory of files.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A directory of named files: segments (appended) and the checkpoint (replaced whole).
pub trait Storage: Send + Sync + 'static {
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens `name` for appending, creating it empty if missing. A new file's name is durable
    /// only after [`Storage::sync_dir`].
    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>>;
    /// Reads up to `buf.len()` bytes of `name` at `offset`; returns how many were read
    /// (fewer only at the end of the file).
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The whole file, or `None` if it does not exist.
    fn read_all(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Cuts `name` to `len` bytes and makes the cut durable.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Replaces `name` with `bytes` atomically and durably: write a temporary file, fsync it,
    /// rename it over `name`, fsync the directory. After a crash `name` holds either the old
    /// or the new bytes, never a mix.
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes the directory's entries (new files, renames) durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// A segment open for appending.
pub trait SegmentFile: Send {
    /// Appends all of `buf`.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: everything appended so far is on stable storage when this returns `Ok`.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real backend: files in one directory.
pub struct FsStorage {
    dir: PathBuf,
    /// Read handles, one per file, shared by every reader (`pread` needs no lock). Bounded by
    /// the number of segments, which is small (a 64 MiB segment holds ~100k ballots).
    readers: Mutex<HashMap<String, Arc<File>>>,
}

impl FsStorage {
    /// Opens (creating if needed) the directory.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            readers: Mutex::new(HashMap::new()),
        })
    }

    fn reader(&self, name: &str) -> io::Result<Arc<File>> {
        // A poisoned lock only means another reader panicked while inserting; the map is
        // still a valid cache.
        let mut map = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get(name) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.dir.join(name))?);
        map.insert(name.to_owned(), f.clone());
        Ok(f)
    }
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(FsSegment { file }))
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.reader(name)?;
        let mut done = 0;
        // Bounded: each turn reads at least one byte or stops.
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn read_all(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.dir.join(name))?;
        f.set_len(len)?;
        f.sync_all()?;
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        // fsync the new bytes *before* the rename: a rename that outlives its data would leave
        // an empty or partial checkpoint after a power loss.
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))?;
        // fsync the directory so the rename itself survives a power loss.
        self.sync_dir()?;
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

struct FsSegment {
    file: File,
}

impl SegmentFile for FsSegment {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
