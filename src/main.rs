//! The `urna` command line: a thin layer over the library.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use urna::log::{Log, LogConfig, LogKey, Opaque};

mod cli;

#[derive(Parser)]
#[command(
    name = "urna",
    version,
    about = "Vote-submission endpoint with a Merkle-logged ballot store"
)]
struct Cli {
    /// None: bare `urna`, which prints the help (see `main`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the ballot endpoint: TLS, the L1–L4 edge, the ballot layer and the log.
    /// `--check` checks everything it needs and exits.
    Serve(cli::serve::ServeArgs),
    /// Voter roll tools.
    Roll {
        #[command(subcommand)]
        command: RollCommand,
    },
    /// Write a new Ed25519 log key (signed-note format) and print its verifier key.
    Keygen {
        /// The key's name: the log's checkpoint origin (deployment and election).
        #[arg(long)]
        name: String,
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a receipt: offline against the log's verifier key; with `--ballot`, that it is
    /// exactly the ballot you sent; with `--url`, that the live log still holds it and
    /// extends its checkpoint. Exit 0 if it verifies, 1 if not (the message names the key,
    /// receipt, ballot or log at fault), 3 if the check could not complete.
    VerifyReceipt(cli::observe::VerifyReceiptArgs),
    /// Copy a log's checkpoint, tiles and entry bundles into a directory, verifying every
    /// file before anything replaces what is there (incremental and resumable); `urna audit
    /// --dir` reads the copy. Exit 0 if the mirror is up to date, 1 if the log failed a
    /// check (the mirror is left as it was), 3 if the run could not complete.
    Mirror(cli::observe::MirrorArgs),
    /// Follow a live log: verify each new checkpoint, its consistency with the last one and
    /// the rules on the new entries, keep the state in a file, compare with peers, and alarm
    /// (exit 1, or a line and go on with `--keep-going`) on a rollback, fork, split view,
    /// bad signature or broken rule.
    Monitor(cli::observe::MonitorArgs),
    /// Audit a whole election log from its public files: the checkpoint's signature, every
    /// entry (manifest, ballots, signatures, roll, window, revote rules), the tiles, the root,
    /// and that the tree extends a previous checkpoint. Goes on past a violation and names
    /// every one by entry index and kind. Exit 0 only if every check passed; 1 if the log
    /// failed any; 3 if the audit could not complete (unreachable, timeouts, a key of
    /// another log).
    Audit(AuditArgs),
    /// Test helper for the crash tests: append `count` entries and print each receipt as one
    /// JSON line once it is durable.
    #[command(hide = true)]
    LogWriter {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        count: u64,
        /// Submitters running at once (so batches form).
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
        /// Bytes per entry.
        #[arg(long, default_value_t = 100)]
        entry_bytes: usize,
    },
}

#[derive(Subcommand)]
enum RollCommand {
    /// Generate a test electorate: a roll and the voters' secret keys (never for a real
    /// election: the secrets belong to the voters).
    Generate {
        /// Number of voters.
        #[arg(long)]
        count: u64,
        /// Key algorithm; `mixed` alternates ed25519 and p256.
        #[arg(long, value_enum, default_value_t = AlgArg::Ed25519)]
        alg: AlgArg,
        /// Where to write the roll (`<alg> <key>` a line).
        #[arg(long)]
        roll: PathBuf,
        /// Where to write the secret keys (one JSON object a line: alg, voter, secret).
        #[arg(long)]
        keys: PathBuf,
    },
    /// Load a roll as the server would, and print its size and SHA-256.
    Check {
        /// The roll file.
        #[arg(long)]
        roll: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgArg {
    Ed25519,
    P256,
    Mixed,
}

/// mimalloc rather than glibc's malloc: a ballot allocates and frees a few dozen small
/// buffers across the network, pool and log threads (see load-tests/README.md). The
/// `system-allocator` feature keeps glibc's, for heap profilers (docs/ARCHITECTURE.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        // Bare `urna` asked for nothing and nothing failed: the help on stdout, exit 0 (as
        // `cargo` does). A wrong argument is a usage error: exit 2, from clap.
        let _ = Cli::command().print_help();
        println!();
        return ExitCode::SUCCESS;
    };
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match command {
        Command::Serve(args) => cli::serve::serve(args),
        Command::Roll { command } => done(roll(command)),
        Command::Keygen { name, out } => done(keygen(&name, &out)),
        Command::VerifyReceipt(args) => Ok(cli::observe::verify_receipt_cmd(args)),
        Command::Mirror(args) => Ok(cli::observe::mirror_cmd(args)),
        Command::Monitor(args) => Ok(cli::observe::monitor_cmd(args)),
        Command::Audit(args) => Ok(ExitCode::from(audit(args))),
        Command::LogWriter {
            dir,
            key,
            count,
            concurrency,
            entry_bytes,
        } => done(log_writer(dir, &key, count, concurrency, entry_bytes)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", one_line(&e));
        ExitCode::FAILURE
    })
}

/// An error and its causes on one line, each said once. Many messages already include their
/// cause (thiserror's `"...: {0}"`); anyhow's own report would print it again under
/// "Caused by:", and with RUST_BACKTRACE=1 a stack trace a user's mistake does not need.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<()> {
    let key = LogKey::generate_file(name, out)
        .with_context(|| format!("creating {} (it must not exist)", out.display()))?;
    println!("{}", key.verifier_key());
    Ok(())
}

/// `urna audit`'s arguments.
#[derive(clap::Args)]
struct AuditArgs {
    /// The log's verifier key: a file holding it (the server's `log.vkey`) or its text,
    /// `name+hex(id)+base64(0x01 ‖ key)`.
    #[arg(long)]
    vkey: String,
    /// The published voter roll file (its SHA-256 must be the manifest's).
    #[arg(long)]
    roll: PathBuf,
    /// The server, `https://host[:port]/`: reads `<url>log/checkpoint` and the tiles.
    #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
    url: Option<String>,
    /// PEM certificate(s) to trust for `--url` (e.g. a demo's self-signed cert.pem);
    /// without it, the Mozilla roots compiled in.
    #[arg(long, requires = "url")]
    ca: Option<PathBuf>,
    /// A mirror directory laid out like `/log/` (`checkpoint`, `tile/...`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// An older signed checkpoint you kept: the audited tree must extend it.
    #[arg(long)]
    previous: Option<PathBuf>,
    /// Print the report as one JSON object: the summary, `ok`, `complete`, violation
    /// counts by kind, and the violations kept (index, kind, message).
    #[arg(long)]
    json: bool,
    /// Deprecated: use `urna mirror`, then `urna audit --dir`. Once the audit passed (and
    /// only then), copies the audited log into this directory with `urna mirror`'s
    /// verified, atomic writer: a log that fails the audit, or does not extend the copy
    /// already there, writes nothing.
    #[arg(long)]
    save_to: Option<PathBuf>,
    /// Time limit of each request (connect, TLS, answer and body).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Connections open at once.
    #[arg(long, default_value_t = 4)]
    max_connections: usize,
    /// Requests started per second (the server's default read limit is 20/s).
    #[arg(long, default_value_t = 15)]
    max_requests_per_s: u32,
    /// 429/503 answers waited out (each said on stderr) before giving up.
    #[arg(long, default_value_t = 100)]
    max_rate_limit_waits: u32,
    /// Entry bundles fetched and verified ahead of the one being checked in order (each
    /// up to 16 MiB); at most 64 (more is taken as 64: it only costs memory).
    #[arg(long, default_value_t = 8)]
    bundles_ahead: usize,
    /// Say on stderr how far the audit has got, at most this often; 0: never.
    #[arg(long, default_value_t = 10_000)]
    progress_ms: u64,
    /// Violations printed in full for each kind (every one is counted): a forged log can
    /// break a rule in each of millions of entries.
    #[arg(long, default_value_t = urna::audit::report::DEFAULT_KEEP_PER_KIND)]
    max_per_kind: usize,
    /// Write the tally-ready set here: each voter's counted ballot under the election's
    /// revote policy, one JSON line a voter, sorted by voter; its SHA-256 is in the summary.
    #[arg(long)]
    tally: Option<PathBuf>,
}

impl AuditArgs {
    fn fetch_limits(&self) -> urna::audit::FetchLimits {
        urna::audit::FetchLimits {
            timeout_ms: self.timeout_ms,
            max_connections: self.max_connections,
            max_requests_per_s: self.max_requests_per_s,
            max_rate_limit_waits: self.max_rate_limit_waits,
            ..Default::default()
        }
    }
}

/// Exit code of `urna audit` when the log failed a check.
const AUDIT_FAILED: u8 = 1;
/// Exit code when the audit could not complete (bad input files, unreachable source).
const AUDIT_INCOMPLETE: u8 = 3;

/// Runs `urna audit` and returns its exit code.
fn audit(args: AuditArgs) -> u8 {
    let json = args.json;
    let report = |code: u8, msg: String| {
        if json {
            let v =
                serde_json::json!({"ok": false, "log_fault": code == AUDIT_FAILED, "error": msg});
            println!("{v}");
        } else if code == AUDIT_FAILED {
            eprintln!("AUDIT FAILED: {msg}");
        } else {
            eprintln!("audit incomplete: {msg}");
        }
        code
    };
    let prepared = (|| -> anyhow::Result<urna::audit::AuditRequest> {
        // Both files are small (a key line; a checkpoint of a few KiB): the bound keeps a
        // wrong path from being read whole.
        const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;
        let read_small = |p: &Path| -> anyhow::Result<Vec<u8>> {
            let mut out = Vec::new();
            File::open(p)
                .with_context(|| format!("opening {}", p.display()))?
                .take(MAX_SMALL_FILE_BYTES)
                .read_to_end(&mut out)
                .with_context(|| format!("reading {}", p.display()))?;
            Ok(out)
        };
        let vkey_path = Path::new(&args.vkey);
        let verifier_key = if vkey_path.is_file() {
            String::from_utf8(read_small(vkey_path)?)
                .context("--vkey file is not UTF-8")?
                .trim()
                .to_owned()
        } else {
            args.vkey.trim().to_owned()
        };
        let roll = urna::ballot::Roll::load(&args.roll)
            .with_context(|| format!("loading the roll {}", args.roll.display()))?;
        let previous = args.previous.as_deref().map(read_small).transpose()?;
        let source = match (&args.url, &args.dir) {
            (Some(url), None) => urna::audit::Source::Https(Box::new(
                urna::audit::HttpsSource::new(url, args.ca.as_deref(), args.fetch_limits())?,
            )),
            (None, Some(dir)) => {
                // A missing mirror is the auditor's mistake, not the log's missing files.
                if !dir.is_dir() {
                    bail!("--dir {}: not a directory", dir.display());
                }
                urna::audit::Source::Dir(dir.clone())
            }
            _ => bail!("give exactly one of --url and --dir"),
        };
        if args.bundles_ahead > urna::audit::run::MAX_BUNDLES_AHEAD {
            eprintln!(
                "--bundles-ahead {}: using {}, the most that buys speed (each bundle ahead costs memory)",
                args.bundles_ahead,
                urna::audit::run::MAX_BUNDLES_AHEAD
            );
        }
        Ok(urna::audit::AuditRequest {
            source: std::sync::Arc::new(source),
            verifier_key,
            roll: std::sync::Arc::new(roll),
            previous,
            bundles_ahead: args.bundles_ahead,
            // Never written during the audit: see `save_verified_copy`.
            save_to: None,
            progress_every: (args.progress_ms > 0)
                .then(|| std::time::Duration::from_millis(args.progress_ms)),
            max_per_kind: args.max_per_kind,
            tally: args.tally.clone(),
        })
    })();
    let req = match prepared {
        Ok(r) => r,
        Err(e) => return report(AUDIT_INCOMPLETE, one_line(&e)),
    };
    // The bundles are decoded and their signatures verified on blocking threads: as many
    // as there are cores, since the work is CPU-bound. Left at tokio's default (512), each
    // bundle in flight got a thread of its own and an allocator heap with it: max RSS grew
    // by ~20 MB a bundle ahead (808 MB at `--bundles-ahead 32` on 1,000,001 entries).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(AUDIT_INCOMPLETE, format!("starting the runtime: {e}")),
    };
    let started = std::time::Instant::now();
    let (source, verifier_key) = (req.source.clone(), req.verifier_key.clone());
    match rt.block_on(urna::audit::audit(req)) {
        Ok(r) => {
            let code = if r.ok() { 0 } else { AUDIT_FAILED };
            if json {
                let mut v = serde_json::to_value(&r.summary).unwrap_or_default();
                v["ok"] = r.ok().into();
                v["complete"] = r.complete.into();
                v["log_fault"] = (!r.ok()).into();
                v["violations_total"] = r.violations.total().into();
                v["violations_omitted"] = r.violations.omitted().into();
                v["violations"] = serde_json::to_value(r.violations.kept().collect::<Vec<_>>())
                    .unwrap_or_default();
                if let Some(first) = r.violations.kept().next() {
                    v["error"] = first.to_string().into();
                }
                println!("{v}");
            } else if r.ok() {
                println!(
                    "OK: the log verifies ({} ms)",
                    started.elapsed().as_millis()
                );
                print!("{}", r.summary);
            } else {
                let how = if r.complete {
                    "".to_owned()
                } else {
                    format!(
                        " (stopped after {} of {} entries)",
                        r.summary.checked, r.summary.tree_size
                    )
                };
                eprintln!(
                    "AUDIT FAILED: {} violations of {} kinds{how}",
                    r.violations.total(),
                    r.summary.violation_counts.len()
                );
                eprint!("{}", r.violations.text());
                print!("{}", r.summary);
            }
            // Only a log that passed is copied (`save_verified_copy`).
            match (&args.save_to, code) {
                (Some(dir), 0) => save_verified_copy(&source, dir, &verifier_key),
                _ => code,
            }
        }
        Err(e) if e.is_log_fault() => report(AUDIT_FAILED, e.to_string()),
        Err(e) => report(AUDIT_INCOMPLETE, e.to_string()),
    }
}

/// `audit --save-to`, after the audit passed: the mirror's writer copies the log (checking
/// it again, file by file, against the copy already there). It used to write every file as
/// it was fetched, before any check, over what was there: a forged log destroyed a good
/// mirror.
fn save_verified_copy(source: &urna::audit::Source, dir: &Path, key: &str) -> u8 {
    match cli::observe::run_mirror(source, dir, key, 0) {
        Ok(line) => {
            eprintln!("--save-to (deprecated: use urna mirror): {line}");
            0
        }
        Err((code, m)) => {
            eprintln!("--save-to (deprecated: use urna mirror): {m}");
            code
        }
    }
}

fn log_writer(
    dir: PathBuf,
    key: &Path,
    count: u64,
    concurrency: u64,
    entry_bytes: usize,
) -> anyhow::Result<()> {
    let key = LogKey::from_file(key)?;
    let cfg = LogConfig {
        dir,
        origin: key.name().to_owned(),
        // Small segments so the crash test also crosses segment boundaries.
        segment_max_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let (log, writer) = Log::open(cfg, key, Opaque, || b"urna test genesis".to_vec())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let pid = std::process::id();
    rt.block_on(async {
        let concurrency = concurrency.clamp(1, 1024);
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = t;
                while i < count {
                    let mut entry = format!("{pid}:{i}:").into_bytes();
                    entry.resize(entry_bytes.max(entry.len()), b'.');
                    let logged = log.submit(entry).await?;
                    let line = serde_json::to_string(&logged.receipt)?;
                    // One write per line: stdout is line-buffered, so the line is out before
                    // the next submission.
                    println!("{line}");
                    i += concurrency;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        log.shutdown().await;
        anyhow::Ok(())
    })?;
    drop(log);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("log writer thread panicked"))?;
    Ok(())
}

fn roll(command: RollCommand) -> anyhow::Result<()> {
    use urna::ballot::keys::{write_electorate, AlgMix};
    match command {
        RollCommand::Generate {
            count,
            alg,
            roll,
            keys,
        } => {
            let mix = match alg {
                AlgArg::Ed25519 => AlgMix::Ed25519,
                AlgArg::P256 => AlgMix::P256,
                AlgArg::Mixed => AlgMix::Mixed,
            };
            let mut r = BufWriter::new(
                File::create(&roll).with_context(|| format!("creating {}", roll.display()))?,
            );
            // Secret keys: readable by their owner only.
            let mut k = BufWriter::new(
                urna::service::setup::create_secret_file(&keys)
                    .with_context(|| format!("creating {}", keys.display()))?,
            );
            write_electorate(count, mix, &mut r, &mut k)?;
            eprintln!(
                "wrote {count} voters to {} and {}",
                roll.display(),
                keys.display()
            );
            Ok(())
        }
        RollCommand::Check { roll } => {
            let start = std::time::Instant::now();
            let r = urna::ballot::Roll::load(&roll)
                .with_context(|| format!("loading {}", roll.display()))?;
            let hex: String = r.sha256().iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "{} voters, sha256 {hex}, loaded in {} ms",
                r.len(),
                start.elapsed().as_millis()
            );
            Ok(())
        }
    }
}
