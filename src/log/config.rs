//! The log's configuration: the `[log]` table of the server's TOML.

use serde::Deserialize;
use std::path::PathBuf;

/// Where the log lives and how its single writer batches. Every field is bounded and has a
/// default that suits one election on one machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Directory holding the segment files and the last signed checkpoint. One log per
    /// directory: two writers on one directory would sign inconsistent checkpoints.
    pub dir: PathBuf,
    /// Checkpoint origin, which is also the log key's name. It names the deployment and the
    /// election (e.g. `urna.example.org/demo-2026`), so a checkpoint of one election can never
    /// be passed off as another's. Must equal the name inside the key file.
    pub origin: String,
    /// Most entries one batch may hold. A batch costs one fdatasync, one signature and one
    /// checkpoint write whatever its size, so larger batches raise throughput; the bound keeps
    /// the time a batch holds the tree's write lock (and the latency of its first entry) short.
    pub batch_max_entries: usize,
    /// Longest the writer waits for more entries after the first one of a batch, in µs. Zero
    /// means "take what is queued and go": under light load a lone entry never waits for a
    /// full batch, and under heavy load entries queue up during the previous fsync anyway.
    pub batch_delay_us: u64,
    /// Capacity of the submission queue. When it is full, `submit` fails at once (the server
    /// answers 503) instead of letting waiting requests pile up in memory.
    pub queue_depth: usize,
    /// A segment file is closed and a new one started once it reaches this many bytes. Smaller
    /// segments bound how much one recovery read holds in memory; fewer files keep the
    /// directory short. Must be below 4 GiB (offsets into a segment are kept as `u32`).
    pub segment_max_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/log"),
            origin: String::from("urna.localhost/demo"),
            batch_max_entries: 16_384,
            batch_delay_us: 0,
            queue_depth: 65_536,
            segment_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl LogConfig {
    /// Checks the bounds the writer relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max_entries == 0 || self.batch_max_entries > 1_000_000 {
            return Err("batch_max_entries must be in 1..=1000000".into());
        }
        if self.batch_delay_us > 1_000_000 {
            return Err("batch_delay_us must be at most 1000000 (1 s)".into());
        }
        if self.queue_depth == 0 || self.queue_depth > 10_000_000 {
            return Err("queue_depth must be in 1..=10000000".into());
        }
        if self.segment_max_bytes < 1024 || self.segment_max_bytes >= u64::from(u32::MAX) {
            return Err("segment_max_bytes must be in 1024..4GiB".into());
        }
        if !signed_note::is_key_name_valid(&self.origin) {
            return Err("origin must be non-empty, without spaces or '+'".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_table_with_unknown_key_is_refused() {
        let ok: LogConfig =
            toml::from_str("origin = \"a.example/x\"\nbatch_delay_us = 50\n").unwrap();
        assert_eq!(ok.batch_delay_us, 50);
        assert_eq!(ok.queue_depth, LogConfig::default().queue_depth);
        assert!(toml::from_str::<LogConfig>("batch_size = 3\n").is_err());
    }

    #[test]
    fn defaults_are_valid_and_bounds_are_checked() {
        assert!(LogConfig::default().validate().is_ok());
        let bad = LogConfig {
            batch_max_entries: 0,
            ..LogConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = LogConfig {
            origin: "has space".into(),
            ..LogConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
