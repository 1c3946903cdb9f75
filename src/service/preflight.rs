//! Everything `urna serve` needs, checked before anything is written: the voting window
//! against the clock, the certificate, the roll, the log key and the log's manifest (entry
//! 0); for `urna serve --check`, the whole log too, read-only. The server refuses to start on
//! any problem, so a mistyped date or a missing file never leaves a half-made data directory
//! behind, and `--check` prints one line per finding.
//!
//! Nothing here creates, truncates or locks a file: `--check` may run beside the server that
//! owns the storage, as `nginx -t` does.

use std::path::Path;
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use super::gate::BallotGate;
use crate::ballot::{Manifest, Roll, VoterStates};
use crate::config::Config;
use crate::log::{FsStorage, LogKey};

/// Longest voting window accepted, in days: the longest real online ballots run a few weeks
/// (Estonia's i-voting 7 days, union and member ballots 2–6 weeks). A longer window is far
/// likelier a mistyped month or year than an election, and once entry 0 is written the
/// window cannot change for the life of the log.
pub const MAX_WINDOW_DAYS: i64 = 92;

/// Furthest ahead an election may open, in days: a server is set up weeks before an
/// election, not years; `2062` for `2026` is the mistake this catches.
pub const MAX_LEAD_DAYS: i64 = 366;

/// What to check, and what to allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Start although `election.closes_at` has passed (to keep serving a closed election's
    /// log, receipts and final checkpoint to observers). Every ballot is then refused.
    pub allow_closed_window: bool,
    /// Read and check the whole log (every record, the replay, the checkpoint), not just its
    /// manifest: what the start's recovery would do, without its writes.
    pub whole_log: bool,
}

/// How a finding reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Checked and fine.
    Ok,
    /// Fine, but worth saying (something will be generated; a server runs on the storage).
    Note,
    /// The server must not start.
    Problem,
}

/// One line of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// What was checked: `window`, `certificate`, `roll`, `log key`, `log`.
    pub subject: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.detail)
    }
}

/// What [`check`] found, and what it loaded for the start to reuse.
pub struct Preflight {
    pub findings: Vec<Finding>,
    /// The roll, loaded and hashed once (a 10M-voter roll takes seconds): `open` reuses it.
    pub roll: Option<Arc<Roll>>,
}

impl Preflight {
    /// The findings that stop the server.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.status == Status::Problem)
    }

    pub fn passed(&self) -> bool {
        self.problems().next().is_none()
    }
}

/// Runs every check, in the order the start needs them. Writes nothing.
pub fn check(config: &Config, now: OffsetDateTime, options: &Options) -> Preflight {
    let mut out = Findings(Vec::new());
    window(config, now, options, &mut out);
    certificate(config, &mut out);
    let roll = roll(config, &mut out);
    let key = log_key(config, &mut out);
    log(config, roll.as_ref(), key.as_ref(), options, &mut out);
    Preflight {
        findings: out.0,
        roll,
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, status: Status, subject: &'static str, detail: impl Into<String>) {
        self.0.push(Finding {
            status,
            subject,
            detail: detail.into(),
        });
    }
    fn ok(&mut self, subject: &'static str, detail: impl Into<String>) {
        self.push(Status::Ok, subject, detail);
    }
    fn note(&mut self, subject: &'static str, detail: impl Into<String>) {
        self.push(Status::Note, subject, detail);
    }
    fn problem(&mut self, subject: &'static str, detail: impl Into<String>) {
        self.push(Status::Problem, subject, detail);
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn days(d: time::Duration) -> String {
    format!("{:.1} days", d.as_seconds_f64() / 86_400.0)
}

/// The window against the clock and against plausible bounds ([`MAX_WINDOW_DAYS`],
/// [`MAX_LEAD_DAYS`]). That closes_at is after opens_at is the config's own rule.
fn window(config: &Config, now: OffsetDateTime, options: &Options, out: &mut Findings) {
    const W: &str = "window";
    let e = &config.election;
    let (opens, closes) = (e.opens_at, e.closes_at);
    let mut fine = true;
    if let Some(opens) = opens {
        if opens - now > time::Duration::days(MAX_LEAD_DAYS) {
            fine = false;
            out.problem(
                W,
                format!(
                    "election.opens_at {} is {} from now (at most {MAX_LEAD_DAYS} allowed): \
                     is the year mistyped?",
                    rfc3339(opens),
                    days(opens - now)
                ),
            );
        }
    }
    if let Some(closes) = closes {
        let (from, what) = match opens {
            Some(opens) => (opens, "election.opens_at"),
            None => (now, "now (no election.opens_at)"),
        };
        if closes - from > time::Duration::days(MAX_WINDOW_DAYS) {
            fine = false;
            out.problem(
                W,
                format!(
                    "the voting window from {what} to election.closes_at {} is {} long \
                     (at most {MAX_WINDOW_DAYS} allowed): is a month or year mistyped?",
                    rfc3339(closes),
                    days(closes - from)
                ),
            );
        }
        if closes <= now {
            fine = false;
            let detail = format!(
                "election.closes_at {} is in the past (now {})",
                rfc3339(closes),
                rfc3339(now)
            );
            if options.allow_closed_window {
                out.note(
                    W,
                    format!(
                        "{detail}: serving the closed election (--allow-closed-window); \
                         every ballot is refused"
                    ),
                );
            } else {
                out.problem(
                    W,
                    format!(
                        "{detail}: every ballot would be refused and the final checkpoint \
                         signed at once. Correct the date, or pass --allow-closed-window to \
                         serve a closed election's log"
                    ),
                );
            }
        }
    }
    if !fine {
        return;
    }
    match (opens, closes) {
        (None, None) => out.note(
            W,
            "no election.opens_at or election.closes_at: ballots are taken whenever the \
             server runs, and no final checkpoint is signed (a demo, not an election)",
        ),
        _ => {
            let state = match (opens, closes) {
                (Some(o), _) if now < o => format!("opens in {}", days(o - now)),
                (_, Some(c)) => format!("open now, closes in {}", days(c - now)),
                _ => "open now, never closes (no election.closes_at)".to_owned(),
            };
            let bound = |t: Option<OffsetDateTime>| t.map_or("unset".to_owned(), rfc3339);
            out.ok(
                W,
                format!(
                    "election.opens_at {}, election.closes_at {}: {state}",
                    bound(opens),
                    bound(closes)
                ),
            );
        }
    }
}

/// The configured certificate and key must load and match; a generated pair is made at
/// start if missing, and must load if present.
fn certificate(config: &Config, out: &mut Findings) {
    const C: &str = "certificate";
    let (cert, key, generated) = config.tls_paths();
    if generated && !(cert.exists() && key.exists()) {
        out.note(
            C,
            format!(
                "none configured: a self-signed certificate will be generated at {} \
                 (a demo; an election sets tls.cert and tls.key)",
                cert.display()
            ),
        );
        return;
    }
    match crate::edge::tls::load_certified_key(&cert, &key, &crate::edge::tls::provider()) {
        Ok(_) => out.ok(C, format!("{} with key {}", cert.display(), key.display())),
        Err(e) => out.problem(C, e.to_string()),
    }
}

fn roll(config: &Config, out: &mut Findings) -> Option<Arc<Roll>> {
    const R: &str = "roll";
    let path = &config.election.roll;
    if !path.exists() {
        match config.election.demo_voters {
            Some(n) => out.note(
                R,
                format!(
                    "{} does not exist: a demo electorate of {n} voters will be generated, \
                     with their SECRET keys beside it in voters.jsonl (a demo only)",
                    path.display()
                ),
            ),
            None => out.problem(
                R,
                format!(
                    "voter roll {} does not exist (set election.demo_voters only for a demo)",
                    path.display()
                ),
            ),
        }
        return None;
    }
    match Roll::load(path) {
        Ok(roll) => {
            out.ok(
                R,
                format!(
                    "{}: {} voters, sha256 {}",
                    path.display(),
                    roll.len(),
                    crate::ballot::entry::hex(&roll.sha256())
                ),
            );
            Some(Arc::new(roll))
        }
        Err(e) => {
            out.problem(R, format!("voter roll {}: {e}", path.display()));
            None
        }
    }
}

/// A log has entries when its first segment holds a record.
fn log_has_entries(config: &Config) -> bool {
    let first = config
        .log_config()
        .dir
        .join(crate::log::store::segment_name(0));
    std::fs::metadata(first).is_ok_and(|m| m.len() > 0)
}

fn log_key(config: &Config, out: &mut Findings) -> Option<LogKey> {
    const K: &str = "log key";
    let path = config.log_key_path();
    if !path.exists() {
        if log_has_entries(config) {
            out.problem(
                K,
                format!(
                    "{} is missing, but the log has entries: restore the key from its backup \
                     (a new key cannot continue a log signed by another)",
                    path.display()
                ),
            );
        } else {
            out.note(
                K,
                format!(
                    "{} does not exist: a new log key named {:?} will be generated \
                     (or install a pre-made one: docs/OPERATIONS.md, \"The key ceremony\")",
                    path.display(),
                    config.log_origin()
                ),
            );
        }
        return None;
    }
    let key = match LogKey::from_file(&path) {
        Ok(key) => key,
        Err(e) => {
            out.problem(K, format!("{}: {e}", path.display()));
            return None;
        }
    };
    let mut fine = true;
    if key.name() != config.log_origin() {
        fine = false;
        out.problem(
            K,
            format!(
                "{} is named {:?}, but the log's origin is {:?} (log.origin, or \
                 urna.localhost/<election.id> by default)",
                path.display(),
                key.name(),
                config.log_origin()
            ),
        );
    }
    if let Some(mode) = loose_mode(&path) {
        fine = false;
        out.problem(
            K,
            format!(
                "{} can be read by others (mode {mode:04o}): chmod 600 it, owned by the \
                 server's user",
                path.display()
            ),
        );
    }
    if fine {
        out.ok(
            K,
            format!("{} (verifier key {})", path.display(), key.verifier_key()),
        );
    }
    Some(key)
}

/// The file's mode if its group or others may read or write it.
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The log's manifest against this configuration, roll and key; with `whole_log`, every
/// record, the replay and the last checkpoint too.
fn log(
    config: &Config,
    roll: Option<&Arc<Roll>>,
    key: Option<&LogKey>,
    options: &Options,
    out: &mut Findings,
) {
    const L: &str = "log";
    let dir = config.log_config().dir;
    let storage = match FsStorage::open_read_only(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.note(
                L,
                format!(
                    "{} does not exist yet: the manifest (entry 0) will be written at start",
                    dir.display()
                ),
            );
            return;
        }
        Err(e) => {
            out.problem(L, format!("{}: {e}", dir.display()));
            return;
        }
    };
    let running = FsStorage::in_use(&dir);
    let first = match crate::log::first_entry(&storage) {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            out.note(
                L,
                format!(
                    "{} holds no entry yet: the manifest (entry 0) will be written at start",
                    dir.display()
                ),
            );
            return;
        }
        Err(e) => {
            out.problem(L, format!("{}: {e}", dir.display()));
            return;
        }
    };
    let logged = match Manifest::decode(&first) {
        Ok(m) => m,
        Err(e) => {
            out.problem(
                L,
                format!("{}: entry 0 is not a manifest: {e}", dir.display()),
            );
            return;
        }
    };
    let Some(roll) = roll else {
        // A missing roll without demo_voters is the roll finding's problem already; with it,
        // a new demo roll would be generated, which this log's manifest cannot match.
        if !config.election.roll.exists() && config.election.demo_voters.is_some() {
            out.problem(
                L,
                format!(
                    "{} has entries, but the roll {} is missing: restore it (a new demo roll \
                     would not match the log's manifest)",
                    dir.display(),
                    config.election.roll.display()
                ),
            );
        }
        return;
    };
    let election = match config.election() {
        Ok(e) => e,
        Err(e) => {
            out.problem(L, e.to_string());
            return;
        }
    };
    let configured = Manifest {
        election: election.clone(),
        roll_sha256: roll.sha256(),
        // Without a key, the key is not compared here (the log key finding says why).
        log_verifier_key: key.map_or(logged.log_verifier_key.clone(), |k| {
            k.verifier_key().to_owned()
        }),
    };
    let differences = logged.differences(&configured);
    if !differences.is_empty() {
        for d in &differences {
            out.problem(L, format!("entry 0 of {} differs: {d}", dir.display()));
        }
        out.note(
            L,
            "entry 0 pins these for the life of the log: restore the settings it holds, or, \
             if no ballot was cast, move the storage directory aside and start a new log \
             (docs/OPERATIONS.md, \"Changing election settings\")",
        );
        return;
    }
    let running_note = if running {
        " (a server is running on it: read as it is now)"
    } else {
        ""
    };
    let Some(key) = key.filter(|_| options.whole_log) else {
        out.ok(
            L,
            format!(
                "{}: entry 0 matches this election, roll and key{running_note}",
                dir.display()
            ),
        );
        return;
    };
    let states = VoterStates::new(roll.clone(), election)
        .with_max_ballots_per_voter(config.election.max_ballots_per_voter.get());
    let mut gate = BallotGate {
        states: Arc::new(RwLock::new(states)),
    };
    match crate::log::inspect(&storage, key, &mut gate) {
        Ok(i) => {
            let checkpoint = i
                .checkpoint_size
                .map_or("no checkpoint yet".to_owned(), |s| {
                    format!("the last checkpoint covers {s}")
                });
            let torn = if i.torn_bytes > 0 {
                format!(
                    "; {} bytes past the last whole record (a torn tail, cut at start)",
                    i.torn_bytes
                )
            } else {
                String::new()
            };
            out.ok(
                L,
                format!(
                    "{}: {} replayed; {checkpoint}{torn}{running_note}",
                    dir.display(),
                    if i.size == 1 {
                        "1 entry".to_owned()
                    } else {
                        format!("{} entries, every one", i.size)
                    }
                ),
            );
        }
        Err(e) => out.problem(L, format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window: &str) -> Config {
        Config::parse(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[election]\nid = \"e-2026\"\n\
             roll = \"/nonexistent/roll.txt\"\ndemo_voters = 3\n{window}\n\
             [storage]\ndir = \"/nonexistent/data\"\n"
        ))
        .unwrap()
    }

    fn window_findings(window: &str, now: &str, allow: bool) -> Vec<Finding> {
        let now =
            OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339).unwrap();
        let mut out = Findings(Vec::new());
        let options = Options {
            allow_closed_window: allow,
            whole_log: false,
        };
        super::window(&config(window), now, &options, &mut out);
        out.0
    }

    fn problems(f: &[Finding]) -> Vec<String> {
        f.iter()
            .filter(|f| f.status == Status::Problem)
            .map(|f| f.detail.clone())
            .collect()
    }

    const NOW: &str = "2026-12-01T10:00:00Z";

    #[test]
    fn a_window_in_the_past_is_a_problem_unless_allowed() {
        let w = "opens_at = \"2026-03-01T07:00:00Z\"\ncloses_at = \"2026-03-01T19:00:00Z\"";
        let p = problems(&window_findings(w, NOW, false));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("election.closes_at 2026-03-01T19:00:00Z is in the past"));
        assert!(p[0].contains("--allow-closed-window"));
        let allowed = window_findings(w, NOW, true);
        assert!(problems(&allowed).is_empty(), "{allowed:?}");
        assert_eq!(allowed[0].status, Status::Note);
    }

    #[test]
    fn implausible_windows_are_problems_even_when_closed_windows_are_allowed() {
        // A year typo in closes_at: a 365-day window.
        let long = "opens_at = \"2026-12-07T07:00:00Z\"\ncloses_at = \"2027-12-07T19:00:00Z\"";
        let p = problems(&window_findings(long, NOW, true));
        assert!(p.len() == 1 && p[0].contains("at most 92"), "{p:?}");
        // No opens_at: the window runs from now.
        let p = problems(&window_findings(
            "closes_at = \"2027-12-07T19:00:00Z\"",
            NOW,
            false,
        ));
        assert!(p.len() == 1 && p[0].contains("from now"), "{p:?}");
        // A year typo in both: opens 36 years ahead.
        let far = "opens_at = \"2062-12-07T07:00:00Z\"\ncloses_at = \"2062-12-07T19:00:00Z\"";
        let p = problems(&window_findings(far, NOW, false));
        assert!(p.len() == 1 && p[0].contains("at most 366"), "{p:?}");
    }

    #[test]
    fn a_plausible_window_is_fine_and_says_when_it_opens() {
        let w = "opens_at = \"2026-12-07T07:00:00Z\"\ncloses_at = \"2026-12-14T19:00:00Z\"";
        let f = window_findings(w, NOW, false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Ok);
        assert!(f[0].detail.contains("opens in 5.9 days"), "{}", f[0]);
        // Exactly at the bounds is still fine.
        let edge = "opens_at = \"2027-12-02T10:00:00Z\"\ncloses_at = \"2028-03-03T10:00:00Z\"";
        let f = window_findings(edge, NOW, false);
        assert!(problems(&f).is_empty(), "{f:?}");
        let none = window_findings("", NOW, false);
        assert_eq!(none[0].status, Status::Note);
    }
}
