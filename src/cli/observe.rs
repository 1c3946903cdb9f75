//! The observers' commands: `urna verify-receipt`, `urna mirror` and `urna monitor`
//! (docs/AUDITING.md is their guide).
//!
//! Exit codes, the same for the three (and for `urna audit`): 0 every check passed; 1 a
//! check failed (the receipt, the ballot or the log is wrong: the message names which);
//! 2 a usage error (clap); 3 the command could not complete (unreachable server, timeouts,
//! unreadable local files), which proves nothing about the log.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use urna::audit::fetch::{FetchLimits, HttpsSource, Source};
use urna::audit::mirror::{mirror, MirrorError, MirrorRequest};
use urna::audit::monitor::{compare_peer, Monitor, Peer, PeerVerdict, PollError};
use urna::audit::receipt::{check_ballot, verify_receipt, ReceiptError};
use urna::audit::tiled::receipt_in_current_log;
use urna::log::Receipt;

/// A check failed.
const FAILED: u8 = 1;
/// The command could not complete.
const INCOMPLETE: u8 = 3;

/// Key, receipt, ballot and state files are small; the bound keeps a wrong path (a disk
/// image, /dev/zero) from being read whole.
const MAX_SMALL_FILE_BYTES: u64 = 1 << 20;

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SMALL_FILE_BYTES + 1).read_to_end(&mut out))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.len() as u64 > MAX_SMALL_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_SMALL_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(out)
}

/// The log's verifier key from `--key`/`--vkey`: a file holding it (the server's
/// `log.vkey`) or the key text itself. Checked here, so a bad key is named as the key's
/// fault, once, before anything else is read.
pub fn read_verifier_key(arg: &str) -> Result<String, String> {
    let path = Path::new(arg);
    let (text, what) = if path.is_file() {
        let bytes = read_small(path).map_err(|e| format!("key: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("key: the file {arg} is not UTF-8 text"))?;
        (text.trim().to_owned(), format!("the file {arg}"))
    } else {
        (arg.trim().to_owned(), format!("{arg:?}"))
    };
    signed_note::StandardVerifier::new(&text).map_err(|e| {
        format!(
            "key: {what} is not a verifier key ({e}; expected a file holding one, or \
             name+hex(id)+base64(0x01 ‖ key))"
        )
    })?;
    Ok(text)
}

fn https(url: &str, ca: Option<&Path>, limits: FetchLimits) -> Result<Source, String> {
    HttpsSource::new(url, ca, limits)
        .map(|h| Source::Https(Box::new(h)))
        .map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
}

/// Bounds on fetching, shared by the observers' commands.
#[derive(clap::Args, Clone)]
pub struct FetchArgs {
    /// Time limit of each request (connect, TLS, answer and body).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Requests started per second (the server's default read limit is 20/s).
    #[arg(long, default_value_t = 15)]
    max_requests_per_s: u32,
    /// 429/503 answers waited out (each said on stderr) before giving up.
    #[arg(long, default_value_t = 100)]
    max_rate_limit_waits: u32,
}

impl FetchArgs {
    fn limits(&self) -> FetchLimits {
        FetchLimits {
            timeout_ms: self.timeout_ms,
            max_requests_per_s: self.max_requests_per_s,
            max_rate_limit_waits: self.max_rate_limit_waits,
            ..FetchLimits::default()
        }
    }
}

/// `urna verify-receipt`'s arguments.
#[derive(clap::Args)]
pub struct VerifyReceiptArgs {
    /// The log's verifier key: a file holding it (the server's `log.vkey`) or its text,
    /// `name+hex(id)+base64(0x01 ‖ key)`.
    #[arg(long, visible_alias = "vkey")]
    key: String,
    /// The submission JSON you sent: checks that the receipt's entry is exactly that
    /// ballot (not the manifest, another voter's ballot or another version of yours).
    #[arg(long)]
    ballot: Option<PathBuf>,
    /// The server (`https://host[:port]/`): also proves that its current log extends the
    /// receipt's checkpoint and still holds the entry at its index.
    #[arg(long)]
    url: Option<String>,
    /// PEM certificate(s) to trust for `--url`; without it, the Mozilla roots compiled in.
    #[arg(long, requires = "url")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    fetch: FetchArgs,
    /// The receipt JSON file, or `-` for standard input.
    receipt: String,
}

/// Runs `urna verify-receipt`.
pub fn verify_receipt_cmd(args: VerifyReceiptArgs) -> ExitCode {
    let fail = |code: u8, m: String| {
        eprintln!("{m}");
        ExitCode::from(code)
    };
    let key = match read_verifier_key(&args.key) {
        Ok(k) => k,
        Err(e) => return fail(INCOMPLETE, e),
    };
    let text = if args.receipt == "-" {
        let mut t = Vec::new();
        match std::io::stdin()
            .take(MAX_SMALL_FILE_BYTES)
            .read_to_end(&mut t)
        {
            Ok(_) => t,
            Err(e) => return fail(INCOMPLETE, format!("receipt: standard input: {e}")),
        }
    } else {
        match read_small(Path::new(&args.receipt)) {
            Ok(t) => t,
            Err(e) => return fail(INCOMPLETE, format!("receipt: {e}")),
        }
    };
    let receipt: Receipt = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                FAILED,
                format!(
                    "receipt: {} is not a receipt (JSON with index, entry and tlog_proof): {e}",
                    args.receipt
                ),
            )
        }
    };
    let verified = match verify_receipt(&receipt, &key) {
        Ok(v) => v,
        Err(e @ ReceiptError::Signature(_)) => {
            return fail(
                FAILED,
                format!(
                    "receipt does NOT verify: {e} (a receipt of another log, or this key is not its log's)"
                ),
            )
        }
        Err(e) => return fail(FAILED, format!("receipt does NOT verify: {e}")),
    };
    println!(
        "OK: entry {} ({} bytes) is in {} at tree size {}",
        verified.index,
        verified.entry.len(),
        verified.checkpoint.origin,
        verified.checkpoint.size
    );
    if let Some(b) = &args.ballot {
        let sent = match read_small(b) {
            Ok(s) => s,
            Err(e) => return fail(INCOMPLETE, format!("ballot: {e}")),
        };
        if let Err(e) = check_ballot(&verified, &sent) {
            return fail(
                FAILED,
                format!("ballot: the receipt is NOT for {}: {e}", b.display()),
            );
        }
        println!("OK: the entry is exactly the ballot in {}", b.display());
    }
    if let Some(url) = &args.url {
        let src = match https(url, args.ca.as_deref(), args.fetch.limits()) {
            Ok(s) => s,
            Err(e) => return fail(INCOMPLETE, e),
        };
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => return fail(INCOMPLETE, e),
        };
        match rt.block_on(receipt_in_current_log(&src, &key, &verified)) {
            Ok(current) => println!(
                "OK: the log at {} still holds entry {} in its current tree of size {}, which extends the receipt's checkpoint",
                src.describe(),
                verified.index,
                current.size
            ),
            Err(e) if e.is_log_fault() => {
                return fail(
                    FAILED,
                    format!("log: {} does NOT hold this receipt: {e}", src.describe()),
                )
            }
            Err(e) => {
                return fail(
                    INCOMPLETE,
                    format!("log: could not check {}: {e}", src.describe()),
                )
            }
        }
    }
    ExitCode::SUCCESS
}

/// `urna mirror`'s arguments.
#[derive(clap::Args)]
pub struct MirrorArgs {
    /// The server, `https://host[:port]/`: reads `<url>log/checkpoint` and the tiles.
    #[arg(long)]
    url: String,
    /// PEM certificate(s) to trust for `--url`; without it, the Mozilla roots compiled in.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The log's verifier key: a file holding it or its text.
    #[arg(long, visible_alias = "key")]
    vkey: String,
    /// The mirror directory (created if missing), laid out like `/log/`: what
    /// `urna audit --dir` reads.
    #[arg(long)]
    dir: PathBuf,
    /// Say on stderr how far the run has got, at most this often; 0: never.
    #[arg(long, default_value_t = 10_000)]
    progress_ms: u64,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Runs `urna mirror`.
pub fn mirror_cmd(args: MirrorArgs) -> ExitCode {
    let fail = |code: u8, m: String| {
        eprintln!("{m}");
        ExitCode::from(code)
    };
    let key = match read_verifier_key(&args.vkey) {
        Ok(k) => k,
        Err(e) => return fail(INCOMPLETE, e),
    };
    let src = match https(&args.url, args.ca.as_deref(), args.fetch.limits()) {
        Ok(s) => s,
        Err(e) => return fail(INCOMPLETE, e),
    };
    match run_mirror(&src, &args.dir, &key, args.progress_ms) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err((code, m)) => fail(code, m),
    }
}

/// One mirror pass of `src` into `dir`; the line to print, or the exit code and message.
/// Also what `urna audit --save-to` runs once its audit passed.
pub fn run_mirror(
    src: &Source,
    dir: &Path,
    key: &str,
    progress_ms: u64,
) -> Result<String, (u8, String)> {
    let rt = runtime().map_err(|e| (INCOMPLETE, e))?;
    let req = MirrorRequest {
        source: src,
        dir: dir.to_owned(),
        verifier_key: key.to_owned(),
        progress_every: (progress_ms > 0).then(|| Duration::from_millis(progress_ms)),
    };
    match rt.block_on(mirror(req)) {
        Ok(r) => Ok(match r.previous_size {
            Some(p) if p == r.size => format!(
                "OK: {} is up to date at size {} (root {})",
                dir.display(),
                r.size,
                r.root
            ),
            p => format!(
                "OK: {} now holds the log at size {} (root {}), from {}: {} files fetched and verified, {} kept",
                dir.display(),
                r.size,
                r.root,
                p.map_or("nothing".to_owned(), |p| format!("size {p}")),
                r.written,
                r.kept
            ),
        }),
        Err(MirrorError::Log(m)) => Err((
            FAILED,
            format!(
                "MIRROR REFUSED: {m}; {} was left as it was",
                dir.display()
            ),
        )),
        Err(MirrorError::Fetch(m)) => Err((
            INCOMPLETE,
            format!("mirror incomplete: {m}; {} was left as it was", dir.display()),
        )),
        Err(MirrorError::Local(m)) => Err((INCOMPLETE, format!("mirror: {m}"))),
    }
}

/// `urna monitor`'s arguments.
#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The server, `https://host[:port]/`.
    #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
    url: Option<String>,
    /// PEM certificate(s) to trust for `--url` and URL peers; without it, the Mozilla roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A directory laid out like `/log/` to follow instead of a server (e.g. a mirror kept
    /// up to date by `urna mirror`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The log's verifier key: a file holding it or its text.
    #[arg(long, visible_alias = "key")]
    vkey: String,
    /// The published voter roll file (its SHA-256 must be the manifest's).
    #[arg(long)]
    roll: PathBuf,
    /// Where the monitor keeps the last checkpoint it verified and the voters' state
    /// (created on the first poll, rewritten atomically after each poll that passed).
    #[arg(long)]
    state: PathBuf,
    /// Seconds between polls.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    interval_s: u64,
    /// Poll once (and compare with the peers) and exit.
    #[arg(long)]
    once: bool,
    /// On an alarm, print it and keep polling (from the last verified checkpoint) instead
    /// of exiting 1; a poll that cannot complete is retried at the next interval.
    #[arg(long)]
    keep_going: bool,
    /// Another observer's view to compare with after each poll: another monitor's state
    /// file, a checkpoint file someone kept, or a server/mirror URL (`https://...`).
    /// Repeatable.
    #[arg(long)]
    peer: Vec<String>,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Runs `urna monitor`.
pub fn monitor_cmd(args: MonitorArgs) -> ExitCode {
    let fail = |code: u8, m: String| {
        eprintln!("{m}");
        ExitCode::from(code)
    };
    let key = match read_verifier_key(&args.vkey) {
        Ok(k) => k,
        Err(e) => return fail(INCOMPLETE, e),
    };
    let roll = match urna::ballot::Roll::load(&args.roll) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            return fail(
                INCOMPLETE,
                format!("roll: loading {}: {e}", args.roll.display()),
            )
        }
    };
    let src = match (&args.url, &args.dir) {
        (Some(url), None) => match https(url, args.ca.as_deref(), args.fetch.limits()) {
            Ok(s) => s,
            Err(e) => return fail(INCOMPLETE, e),
        },
        (None, Some(d)) if d.is_dir() => Source::Dir(d.clone()),
        (None, Some(d)) => {
            return fail(
                INCOMPLETE,
                format!("--dir {}: not a directory", d.display()),
            )
        }
        _ => return fail(INCOMPLETE, "give exactly one of --url and --dir".into()),
    };
    let mut peers = Vec::new();
    for p in &args.peer {
        if p.starts_with("https://") {
            match https(p, args.ca.as_deref(), args.fetch.limits()) {
                Ok(s) => peers.push(Peer::Url(Box::new(s))),
                Err(e) => return fail(INCOMPLETE, format!("--peer: {e}")),
            }
        } else {
            peers.push(Peer::File(PathBuf::from(p)));
        }
    }
    let mut monitor = match Monitor::open(roll, &key, args.state.clone()) {
        Ok(m) => m,
        Err(e) => return fail(INCOMPLETE, e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(INCOMPLETE, e),
    };
    rt.block_on(async {
        // Whether any alarm was raised (with --keep-going): `--once` then still exits 1.
        let mut alarmed = false;
        // Bounded by the operator: one turn per interval until killed, or one with --once.
        loop {
            match monitor.poll(&src).await {
                Ok(r) => println!(
                    "monitor: checkpoint of size {} verified (root {}){}; {} new entries checked",
                    r.size,
                    r.root,
                    r.previous_size
                        .map_or(String::new(), |p| format!(", consistent with size {p}")),
                    r.new_entries
                ),
                Err(PollError::Alarm(a)) => {
                    eprintln!("{a}");
                    alarmed = true;
                    if !args.keep_going {
                        return ExitCode::from(FAILED);
                    }
                }
                Err(e @ PollError::Incomplete(_)) => {
                    eprintln!("monitor: {e}");
                    if !args.keep_going {
                        return ExitCode::from(INCOMPLETE);
                    }
                }
            }
            if let Some(ours) = monitor.verified().cloned() {
                for peer in &peers {
                    match compare_peer(&src, &key, &ours, peer).await {
                        Ok(PeerVerdict::Consistent { peer_size }) => println!(
                            "monitor: peer {} (size {peer_size}) sees the same log",
                            peer.describe()
                        ),
                        Ok(PeerVerdict::Ahead { peer_size }) => println!(
                            "monitor: peer {} is ahead (size {peer_size}); compared again at the next poll",
                            peer.describe()
                        ),
                        Ok(PeerVerdict::Unusable(m)) => eprintln!(
                            "monitor: peer {} proves nothing: {m}",
                            peer.describe()
                        ),
                        Err(PollError::Alarm(a)) => {
                            eprintln!("{a}");
                            alarmed = true;
                            if !args.keep_going {
                                return ExitCode::from(FAILED);
                            }
                        }
                        Err(e) => eprintln!("monitor: peer {}: {e}", peer.describe()),
                    }
                }
            }
            if args.once {
                return ExitCode::from(if alarmed { FAILED } else { 0 });
            }
            tokio::time::sleep(Duration::from_secs(args.interval_s)).await;
        }
    })
}
