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
    /// Opens `name` for writing in place, creating it empty if missing (the checkpoint
    /// slots). A new file's name is durable only after [`Storage::sync_dir`].
    fn open_slots(&self, name: &str) -> io::Result<Box<dyn SlotFile>>;
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

/// A file overwritten in place (the checkpoint slots).
pub trait SlotFile: Send {
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: every write so far is on stable storage when this returns `Ok`.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real backend: files in one directory.
pub struct FsStorage {
    dir: PathBuf,
    /// Read handles, one per file, shared by every reader (`pread` needs no lock). Bounded by
    /// the number of segments, which is small (a 64 MiB segment holds ~100k ballots).
    readers: Mutex<HashMap<String, Arc<File>>>,
    /// An exclusive lock on `dir/LOCK`, held for as long as the storage lives. Two writers on
    /// one directory would append to the same segment and sign checkpoints of different
    /// trees: the second server must refuse to start instead. `None` when read-only.
    _lock: Option<File>,
}

impl FsStorage {
    /// Opens (creating if needed) the directory, and takes its lock: fails with
    /// `WouldBlock` if another process (or another `FsStorage`) holds it.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another log writer", dir.display()),
            ),
            std::fs::TryLockError::Error(e) => e,
        })?;
        Ok(Self {
            dir,
            readers: Mutex::new(HashMap::new()),
            _lock: Some(lock),
        })
    }

    /// Opens an existing directory to read only: nothing is created and no lock is taken,
    /// so it can look at a log while its server runs. Every write fails with
    /// `PermissionDenied`.
    pub fn open_read_only(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        if !std::fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self {
            dir,
            readers: Mutex::new(HashMap::new()),
            _lock: None,
        })
    }

    /// Whether a log writer (a running server) holds `dir`'s lock now. Reads only: a
    /// shared lock, tried and released at once on a descriptor opened read-only.
    pub fn in_use(dir: &std::path::Path) -> bool {
        let Ok(lock) = File::open(dir.join("LOCK")) else {
            return false;
        };
        matches!(
            lock.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        )
    }

    fn writable(&self) -> io::Result<()> {
        if self._lock.is_some() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open read-only", self.dir.display()),
            ))
        }
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
        self.writable()?;
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
        self.writable()?;
        let f = OpenOptions::new().write(true).open(self.dir.join(name))?;
        f.set_len(len)?;
        f.sync_all()?;
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn open_slots(&self, name: &str) -> io::Result<Box<dyn SlotFile>> {
        self.writable()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(name))?;
        Ok(Box::new(FsSlots { file }))
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.writable()?;
        File::open(&self.dir)?.sync_all()
    }
}

struct FsSlots {
    file: File,
}

impl SlotFile for FsSlots {
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
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

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_second_writer_on_the_same_directory_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = FsStorage::open(dir.path()).unwrap();
        let second = FsStorage::open(dir.path())
            .err()
            .expect("second open must fail");
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        FsStorage::open(dir.path()).unwrap();
    }

    #[test]
    fn read_only_storage_takes_no_lock_writes_nothing_and_sees_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let missing = FsStorage::open_read_only(dir.path().join("nope")).err();
        assert_eq!(missing.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
        assert!(!FsStorage::in_use(dir.path()));
        let writer = FsStorage::open(dir.path()).unwrap();
        assert!(FsStorage::in_use(dir.path()));
        let reader = FsStorage::open_read_only(dir.path()).unwrap();
        let denied = reader.open_append("00000000000000000000.seg").err();
        assert_eq!(
            denied.map(|e| e.kind()),
            Some(io::ErrorKind::PermissionDenied)
        );
        assert!(reader.truncate("x", 0).is_err() && reader.sync_dir().is_err());
        assert_eq!(reader.list().unwrap(), ["LOCK"]);
        drop(writer);
        assert!(!FsStorage::in_use(dir.path()));
    }
}
