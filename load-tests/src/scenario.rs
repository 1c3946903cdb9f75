//! A scenario file: the target, how long, and the tasks that run side by side.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::kinds::flood::FloodRequest;
pub use crate::kinds::voters::MAX_BALLOTS;
pub use crate::kinds::{Task, MAX_CONNECTIONS};

/// Longest run a scenario may ask for. An attack tool that forgets to stop is an attack.
pub const MAX_DURATION_S: u64 = 3600;

/// One run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `host:port` of the deployment's ballot listener.
    pub target: SocketAddr,
    /// TLS server name (SNI and certificate check).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// PEM file of the CA (or self-signed certificate) to trust. Required unless `plain`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Speak plain HTTP (a listener behind a TLS-terminating balancer).
    #[serde(default)]
    pub plain: bool,
    /// How long every task runs, in seconds (1..=3600). May be left out of the file and
    /// given with `--duration-s`.
    #[serde(default)]
    pub duration_s: u64,
    /// Pause between opening the connections and starting the clock, in ms (default 1000,
    /// at most 60000). Opening hundreds of TLS connections at once leaves both sides busy
    /// for a moment after the last handshake; measured without it, the first ~0.2 s of a
    /// 10k/s run answered in 100–300 ms and made the run's p99 (load-tests/README.md).
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Seconds HTTP tasks send before the counted `duration_s` begins (default 0, at most
    /// 600): caches, allocator and scheduler reach their steady state, and only that is
    /// reported. Ballots sent in the warm-up come out of the task's `ballots`.
    #[serde(default)]
    pub warmup_s: u64,
    /// The election id the voters' ballots name.
    pub election: String,
    /// The electorate's secret keys (`urna roll generate --keys`), one JSON object a line.
    #[serde(default)]
    pub voters: Option<PathBuf>,
    /// Check every receipt the voters get, offline, with the log's verifier key (fetched
    /// from `GET /v1/election` before the run): default true. Off only for a target that is
    /// not an Urna server (a stand-in in tests).
    #[serde(default = "yes")]
    pub verify_receipts: bool,
    /// What the legitimate voters must get for the run to pass (exit 0).
    #[serde(default)]
    pub expect: Expect,
    /// Seeds every random draw of the run (payloads, Poisson gaps, retry jitter): the same
    /// seed sends the same ballots on the same schedule. Absent: one is drawn at random,
    /// printed and recorded in the report, so the run can be replayed with `--seed`.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The election's roll file (`urna roll generate`): the closing audit checks the log's
    /// rules (listed keys, rising seqs) against it. Needed when the run audits and has voters.
    #[serde(default)]
    pub roll: Option<PathBuf>,
    /// Audit the target's log after the run (default true): every receipt a voter got is in
    /// the log with its exact bytes, the log grew consistently from the checkpoint seen at
    /// start, and it breaks none of its rules (no hostile ballot logged). Exit 4 if not.
    /// Off for a target that is not an Urna server.
    #[serde(default = "yes")]
    pub audit: bool,
    /// Largest log the closing audit walks, in entries (default 200,000): at the server's
    /// default read limit an audit reads ~3,800 entries/s, so this bounds it to about a
    /// minute. A larger log fails the audit (it was not done) rather than passing unread.
    #[serde(default = "default_audit_max_entries")]
    pub audit_max_entries: u64,
    /// Scrape the target's `/metrics` before and after the run, for the report's counter
    /// deltas (default true). Off for a stand-in whose answers depend on how many requests
    /// it has seen (the scrapes are requests too).
    #[serde(default = "yes")]
    pub metrics: bool,
    #[serde(rename = "task")]
    pub tasks: Vec<Task>,
}

/// Most entries `audit_max_entries` may allow: an hour at the default read limit.
pub const MAX_AUDIT_ENTRIES: u64 = 20_000_000;

fn default_audit_max_entries() -> u64 {
    200_000
}

/// The bounds a run's voters (every `voters` and `arrivals` task) must meet, else urna-sim
/// exits 1. Receipts that fail the offline check always fail the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Least share of voters (ballots, for `voters` tasks) accepted, in % (default 100:
    /// one lost or refused legitimate ballot fails the run).
    #[serde(default = "hundred")]
    pub min_accepted_pct: f64,
    /// Least share accepted on the first try, in % (default 0: no bound).
    #[serde(default)]
    pub min_first_try_pct: f64,
    /// Largest p99 from arrival to 2xx, in ms (default: no bound).
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            min_accepted_pct: 100.0,
            min_first_try_pct: 0.0,
            max_p99_ms: None,
        }
    }
}

fn hundred() -> f64 {
    100.0
}

fn yes() -> bool {
    true
}

fn default_settle_ms() -> u64 {
    1000
}

fn default_server_name() -> String {
    "localhost".into()
}

impl Scenario {
    /// Reads and checks a scenario file; relative paths in it are taken from the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let s = Scenario::read(path)?;
        s.check()?;
        Ok(s)
    }

    /// Reads a scenario file without checking it, so that command-line overrides (`--ca`,
    /// `--voters`, `--duration-s`, `--target`) can repair it before [`Scenario::check`].
    pub fn read(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        s.ca = s.ca.map(|p| base.join(p));
        s.voters = s.voters.map(|p| base.join(p));
        s.roll = s.roll.map(|p| base.join(p));
        Ok(s)
    }

    /// Bounds every knob: the simulator must stop by itself and hold a bounded amount.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_DURATION_S).contains(&self.duration_s),
            "duration_s must be in 1..={MAX_DURATION_S}"
        );
        anyhow::ensure!(self.settle_ms <= 60_000, "settle_ms must be at most 60000");
        anyhow::ensure!(self.warmup_s <= 600, "warmup_s must be at most 600");
        anyhow::ensure!(
            self.plain || self.ca.is_some(),
            "ca is required unless plain = true"
        );
        let e = &self.expect;
        anyhow::ensure!(
            (0.0..=100.0).contains(&e.min_accepted_pct)
                && (0.0..=100.0).contains(&e.min_first_try_pct),
            "expect: min_accepted_pct and min_first_try_pct must be in 0..=100"
        );
        anyhow::ensure!(
            e.max_p99_ms.is_none_or(|ms| ms > 0.0),
            "expect: max_p99_ms must be positive"
        );
        anyhow::ensure!(
            !self.tasks.is_empty(),
            "a scenario needs at least one [[task]]"
        );
        for t in &self.tasks {
            t.spec().check(self)?;
        }
        if self.audit {
            anyhow::ensure!(
                !self.plain,
                "the closing audit reads the log over TLS: set audit = false for a plain target"
            );
            anyhow::ensure!(
                self.voters.is_none() || self.roll.is_some(),
                "roll is required for the closing audit (the election's roll file, e.g. \
                 data/roll.txt, or --roll), or set audit = false"
            );
            anyhow::ensure!(
                (1..=MAX_AUDIT_ENTRIES).contains(&self.audit_max_entries),
                "audit_max_entries must be in 1..={MAX_AUDIT_ENTRIES}"
            );
        }
        Ok(())
    }

    /// The run's seed; 0 before [`crate::runner::run`] has drawn one for a scenario that
    /// names none.
    pub fn run_seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_unbounded_runs_are_refused() {
        let ok = r#"
            target = "127.0.0.1:8443"
            ca = "cert.pem"
            duration_s = 5
            election = "demo-2026"
            [[task]]
            kind = "flood"
            name = "f"
            connections = 4
            sources = "127.0.0.9/32"
            request = "get-election"
        "#;
        let s: Scenario = toml::from_str(ok).unwrap();
        s.check().unwrap();
        let typo = ok.replace("duration_s", "duration");
        assert!(toml::from_str::<Scenario>(&typo).is_err());
        let forever: Scenario = toml::from_str(&ok.replace("= 5", "= 999999")).unwrap();
        assert!(forever.check().is_err());
        let crowd: Scenario = toml::from_str(&ok.replace("= 4", "= 1000000")).unwrap();
        assert!(crowd.check().is_err());
        assert_eq!(s.settle_ms, 1000);
        let idle: Scenario =
            toml::from_str(&ok.replace("duration_s = 5", "duration_s = 5\nsettle_ms = 60001"))
                .unwrap();
        assert!(idle.check().is_err());
        let long: Scenario =
            toml::from_str(&ok.replace("duration_s = 5", "duration_s = 5\nwarmup_s = 601"))
                .unwrap();
        assert!(long.check().is_err());
        let h1_streams: Scenario =
            toml::from_str(&format!("{ok}streams_per_connection = 2\n")).unwrap();
        assert!(h1_streams.check().is_err());
        let h2_streams: Scenario =
            toml::from_str(&format!("{ok}streams_per_connection = 2\nhttp2 = true\n")).unwrap();
        h2_streams.check().unwrap();
        let lax: Scenario =
            toml::from_str(&ok.replace("[[task]]", "[expect]\nmin_accepted_pct = 101\n[[task]]"))
                .unwrap();
        assert!(lax.check().is_err());
        assert_eq!(s.expect.min_accepted_pct, 100.0);
    }

    #[test]
    fn a_file_is_read_before_its_checks_so_overrides_can_repair_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            r#"
            target = "127.0.0.1:8443"
            election = "demo-2026"
            [[task]]
            kind = "voters"
            name = "v"
            connections = 1
            sources = "127.0.0.9/32"
            ballots = 1
        "#,
        )
        .unwrap();
        // No ca, no voters, no duration: the file alone does not check...
        assert!(Scenario::load(&path).is_err());
        let mut s = Scenario::read(&path).unwrap();
        assert!(s.check().is_err());
        // ... and the overrides make it whole.
        s.ca = Some("cert.pem".into());
        s.voters = Some("voters.jsonl".into());
        s.duration_s = 5;
        // Voters and the closing audit on (the default) need the roll, for its rules.
        assert!(s.check().unwrap_err().to_string().contains("roll"));
        s.roll = Some("roll.txt".into());
        s.check().unwrap();
        s.roll = None;
        s.audit = false;
        s.check().unwrap();
    }

    #[test]
    fn every_scenario_in_the_folder_loads_and_checks() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "{n} scenarios");
    }
}
