//! A simulated disk for tests: it remembers what was fsynced, can fail an fsync on demand,
//! and can "lose power", keeping only the fsynced bytes plus an arbitrary prefix or torn
//! piece of what was not. SIGKILL keeps the page cache, so only this can show that the store
//! never answers before its bytes are durable.

use super::storage::{SegmentFile, SlotFile, Storage};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Default)]
struct SimFile {
    /// What a reader sees (the page cache).
    data: Vec<u8>,
    /// What is on stable storage (as of the last sync).
    durable: Vec<u8>,
    /// Whether the file's name survives a power loss (set by `sync_dir`).
    name_durable: bool,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<String, SimFile>,
    /// Mutating operations so far (append, sync, truncate, replace, sync_dir).
    ops: u64,
    /// Power fails at this operation: it and every later one returns an error.
    crash_at_op: Option<u64>,
    crashed: bool,
    /// `sync_data` calls so far, and which one (1-based) fails with EIO.
    syncs: u64,
    fail_sync: Option<u64>,
}

/// The simulated disk. Clones share the same disk.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss")
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A test thread that panicked while holding the lock leaves a usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power fails at the `n`-th mutating operation from now (1 = the next one).
    pub fn crash_after_ops(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at_op = Some(s.ops + n.max(1));
    }

    /// The `n`-th `sync_data` from now (1 = the next one) fails with an I/O error.
    pub fn fail_sync_after(&self, n: u64) {
        let mut s = self.lock();
        s.fail_sync = Some(s.syncs + n.max(1));
    }

    /// Whether power has failed.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Number of `sync_data` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// The disk as it is after power comes back: per file, the fsynced image, over which
    /// (chosen by `seed`) nothing, a prefix of the unsynced writes, or such a prefix followed
    /// by a torn piece (zeroes or garbage) has landed. Files whose name was never made
    /// durable vanish.
    pub fn after_power_loss(&self, seed: u64) -> SimStorage {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let s = self.lock();
        let mut files = BTreeMap::new();
        for (name, f) in &s.files {
            if !f.name_durable {
                continue;
            }
            let mut data = f.durable.clone();
            if f.data != f.durable {
                // The first byte where the page cache differs from the disk: writes land from
                // there, in order, and stop at a random point.
                let from = f
                    .data
                    .iter()
                    .zip(&f.durable)
                    .position(|(a, b)| a != b)
                    .unwrap_or(f.data.len().min(f.durable.len()));
                let mode = rng.gen_range(0..3);
                if mode > 0 && from < f.data.len() {
                    let k = rng.gen_range(from..=f.data.len());
                    if data.len() < k {
                        data.resize(k, 0);
                    }
                    data[from..k].copy_from_slice(&f.data[from..k]);
                    if mode == 2 {
                        // A torn piece after what landed: zeroes or garbage.
                        let torn = rng.gen_range(1..=4096usize);
                        let garbage: Vec<u8> = if rng.gen_bool(0.5) {
                            vec![0; torn]
                        } else {
                            (0..torn).map(|_| rng.gen()).collect()
                        };
                        let end = k + torn;
                        if data.len() < end {
                            data.resize(end, 0);
                        }
                        data[k..end].copy_from_slice(&garbage);
                    }
                }
            }
            files.insert(
                name.clone(),
                SimFile {
                    durable: data.clone(),
                    data,
                    name_durable: true,
                },
            );
        }
        SimStorage {
            state: Arc::new(Mutex::new(SimState {
                files,
                ..SimState::default()
            })),
        }
    }

    /// The bytes a reader would see in `name` (for tests that cut files by hand).
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.data.clone())
    }

    /// Sets `name` to `bytes`, durably (for tests that cut files by hand).
    pub fn set_file(&self, name: &str, bytes: Vec<u8>) {
        self.lock().files.insert(
            name.to_owned(),
            SimFile {
                durable: bytes.clone(),
                data: bytes,
                name_durable: true,
            },
        );
    }

    /// Counts one mutating operation; fails if power is (now) gone.
    fn op(s: &mut SimState) -> io::Result<()> {
        if s.crashed {
            return Err(dead());
        }
        s.ops += 1;
        if s.crash_at_op.is_some_and(|c| s.ops >= c) {
            s.crashed = true;
            return Err(dead());
        }
        Ok(())
    }
}

impl SimStorage {
    /// Opens (creating) a file for writing: one operation on the simulated disk.
    fn open_file(&self, name: &str) -> io::Result<SimSegment> {
        let mut s = self.lock();
        Self::op(&mut s)?;
        s.files.entry(name.to_owned()).or_default();
        Ok(SimSegment {
            disk: self.clone(),
            name: name.to_owned(),
        })
    }
}

impl Storage for SimStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().files.keys().cloned().collect())
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(self.open_file(name)?))
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.lock();
        let f = s
            .files
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(f.data.len());
        let n = buf.len().min(f.data.len() - start);
        buf[..n].copy_from_slice(&f.data[start..start + n]);
        Ok(n)
    }

    fn read_all(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.lock().files.get(name).map(|f| f.data.clone()))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        Self::op(&mut s)?;
        let f = s
            .files
            .get_mut(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(f.data.len());
        f.data.truncate(len);
        f.durable.clone_from(&f.data);
        Ok(())
    }

    fn open_slots(&self, name: &str) -> io::Result<Box<dyn SlotFile>> {
        Ok(Box::new(self.open_file(name)?))
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.lock();
        Self::op(&mut s)?;
        for f in s.files.values_mut() {
            f.name_durable = true;
        }
        Ok(())
    }
}

struct SimSegment {
    disk: SimStorage,
    name: String,
}

impl SegmentFile for SimSegment {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.disk.lock();
        SimStorage::op(&mut s)?;
        let f = s.files.entry(self.name.clone()).or_default();
        f.data.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.disk.lock();
        SimStorage::op(&mut s)?;
        s.syncs += 1;
        if s.fail_sync.is_some_and(|n| s.syncs == n) {
            return Err(io::Error::other("simulated EIO on fdatasync"));
        }
        let f = s.files.entry(self.name.clone()).or_default();
        f.durable.clone_from(&f.data);
        Ok(())
    }
}

impl SlotFile for SimSegment {
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut s = self.disk.lock();
        SimStorage::op(&mut s)?;
        let f = s.files.entry(self.name.clone()).or_default();
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset"))?;
        let end = start + buf.len();
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        SegmentFile::sync_data(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_keeps_every_synced_byte() {
        for seed in 0..50 {
            let disk = SimStorage::new();
            let mut f = disk.open_append("a").unwrap();
            disk.sync_dir().unwrap();
            f.append(b"durable").unwrap();
            f.sync_data().unwrap();
            f.append(b"maybe").unwrap();
            let after = disk.after_power_loss(seed);
            let data = after.file("a").unwrap();
            assert!(data.starts_with(b"durable"), "seed {seed}");
        }
        let disk = SimStorage::new();
        let mut f = disk.open_append("b").unwrap();
        f.append(b"x").unwrap();
        f.sync_data().unwrap();
        assert!(
            disk.after_power_loss(0).file("b").is_none(),
            "name never synced"
        );
    }

    #[test]
    fn crash_point_fails_that_op_and_all_later() {
        let disk = SimStorage::new();
        let mut f = disk.open_append("a").unwrap();
        disk.crash_after_ops(2);
        f.append(b"1").unwrap();
        assert!(f.sync_data().is_err());
        assert!(f.append(b"2").is_err());
        assert!(disk.crashed());
    }
}
