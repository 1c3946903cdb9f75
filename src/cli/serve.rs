//! `urna serve`: the checks before anything is written, the start order that leaves nothing
//! behind when a start fails, the banner, and the election's close.
//!
//! The start order, and why:
//! 1. the config, then every check of `service::preflight` (the window against the clock,
//!    the certificate, the roll, the log key, the log's manifest): a problem stops the start
//!    before anything is written;
//! 2. bind the listeners: a port in use stops it before anything is generated;
//! 3. only then generate what a first start needs (certificate, demo electorate, log key),
//!    recover or create the log, and listen.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use urna::config::Config;
use urna::service::preflight::{self, Options, Preflight, Status};

/// `urna serve`'s arguments.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The configuration file; without it, the embedded default (config/urna.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config, the window against the clock, the certificate, the roll, the log key
    /// and the whole existing log against them, then exit: 0 if the server would start, 1
    /// if not (one line per problem). Writes nothing; safe beside a running server.
    #[arg(long)]
    check: bool,
    /// Start although election.closes_at has passed: to keep serving a closed election's
    /// log, receipts and final checkpoint. Every ballot is refused.
    #[arg(long)]
    allow_closed_window: bool,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let source = args.config.as_ref().map_or_else(
        || "embedded default (config/urna.toml)".to_owned(),
        |p| p.display().to_string(),
    );
    let options = Options {
        allow_closed_window: args.allow_closed_window,
        whole_log: args.check,
    };
    let now = time::OffsetDateTime::now_utc();
    if args.check {
        let report = preflight::check(&config, now, &options);
        return Ok(print_check(&source, &report));
    }
    urna::edge::telemetry::init_tracing(config.server.log_format);
    let report = preflight::check(&config, now, &options);
    if !report.passed() {
        // Each problem, and the notes that say what to do about them (same subject).
        let problems: Vec<_> = report.problems().collect();
        for f in &report.findings {
            match f.status {
                Status::Problem => eprintln!("error: {f}"),
                Status::Note if problems.iter().any(|p| p.subject == f.subject) => {
                    eprintln!("hint: {f}")
                }
                _ => {}
            }
        }
        eprintln!(
            "error: not starting: {} in {source} (nothing was written; `urna serve --check` \
             lists every check)",
            plural(problems.len(), "problem")
        );
        return Ok(ExitCode::FAILURE);
    }
    for note in report.findings.iter().filter(|f| f.status == Status::Note) {
        if note.subject == "window" {
            tracing::warn!("{note}");
        }
    }
    let fd_limit = match urna::edge::raise_fd_limit() {
        Ok(limit) => {
            // Room for the table plus the log's files, the listeners and the runtime.
            let needed = config.limits.max_connections.get() as u64 + 256;
            if limit < needed {
                tracing::warn!(
                    limit,
                    needed,
                    "the open-file limit is below limits.max_connections plus a margin: \
                     accept will fail with EMFILE first (raise LimitNOFILE / ulimit -Hn)"
                );
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            None
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.server.worker_threads {
        rt.worker_threads(n.get());
    }
    rt.enable_all()
        .build()?
        .block_on(start(config, report, source, fd_limit))
}

/// Binds, then generates and opens, then serves (the module's start order, steps 2 and 3).
async fn start(
    config: Config,
    report: Preflight,
    source: String,
    fd_limit: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let listeners = urna::edge::Listeners::bind(&config).context("binding the listeners")?;
    let tls = urna::edge::prepare_tls(&config).context("preparing TLS")?;
    let opened = tokio::task::spawn_blocking({
        let config = config.clone();
        move || urna::service::open_with(&config, report.roll)
    })
    .await
    .context("opening the election")?
    .context("opening the election")?;
    let server = urna::edge::Server::on(&config, listeners, opened.service.clone())
        .context("starting the listeners")?;
    let addr = server.local_addr().context("reading the bound address")?;

    let generated = |yes: bool| if yes { " (generated now)" } else { "" };
    let mut lines = vec![
        format!("config:       {source}"),
        format!(
            "certificate:  {}{}",
            tls.cert.display(),
            generated(tls.generated)
        ),
        format!("tls key:      {}", tls.key.display()),
        format!("storage:      {}", config.storage.dir.display()),
        format!(
            "roll:         {} ({} voters){}",
            opened.roll.display(),
            opened.voters,
            generated(opened.demo_keys.is_some())
        ),
    ];
    let keys = opened.roll.with_file_name("voters.jsonl");
    if keys.exists() {
        lines.push(format!(
            "demo voters:  {} (secret keys: demo only)",
            keys.display()
        ));
    }
    lines.extend([
        format!(
            "log:          {} ({} entries)",
            opened.log_dir.display(),
            opened.log_size
        ),
        format!("log key:      {}", opened.log_key.display()),
        format!(
            "log vkey:     {} (publish it: receipts and audits are checked against it)",
            opened.verifier_key_file.display()
        ),
        format!("verifier key: {}", opened.verifier_key),
    ]);
    let backend = urna::ballot::Ed25519Backend::detect();
    lines.push(format!(
        "signatures:   ed25519 on the {} backend",
        backend.label()
    ));
    if urna::ballot::Ed25519Backend::ifma_left_out() {
        // RUSTFLAGS replaces .cargo/config.toml's flags instead of adding to them.
        tracing::warn!(
            "this CPU has AVX-512 IFMA, which this build left out (~20% of the signature \
             pool's throughput): rebuild with --cfg curve25519_dalek_backend=\"avx512\" in \
             RUSTFLAGS (docs/OPERATIONS.md)"
        );
    }
    if let Some(limit) = fd_limit {
        lines.push(format!("open files:   up to {limit}"));
    }
    lines.push(
        "tour:         README.md, \"A tour, with the server running\"; the voters' page is \
         the url below"
            .to_owned(),
    );
    if let Some(plain) = server.plain_addr() {
        lines.push(format!("plain http:   http://{plain}/"));
    }
    // Last, and only once bound: scripts and tests read the banner up to this line.
    lines.push(format!("url:          https://{addr}/"));
    say(&(lines.join("\n") + "\n"));
    // Plain values only: a JSON log line carries `"plain":"127.0.0.1:8680"`, never `Some(..)`.
    match server.plain_addr() {
        Some(plain) => tracing::info!(listen = %addr, plain = %plain, "serving"),
        None => tracing::info!(listen = %addr, "serving"),
    }
    run(config, server, opened).await
}

/// Writes to stdout and ignores a closed one: a server must not die because whoever started
/// it stopped reading (`println!` panics on a broken pipe).
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `urna serve --check`: one line per finding, problems on stderr; exit 0 if the server
/// would start.
fn print_check(source: &str, report: &Preflight) -> ExitCode {
    say(&format!("ok    config: {source}\n"));
    for f in &report.findings {
        match f.status {
            Status::Ok => say(&format!("ok    {f}\n")),
            Status::Note => say(&format!("note  {f}\n")),
            Status::Problem => eprintln!("error {f}"),
        }
    }
    let problems = report.problems().count();
    if problems == 0 {
        say("check passed: the server would start (nothing was written)\n");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "check failed: {} (nothing was written)",
            plural(problems, "problem")
        );
        ExitCode::FAILURE
    }
}

async fn run(
    config: Config,
    server: urna::edge::Server<urna::service::Service>,
    opened: urna::service::Opened,
) -> anyhow::Result<ExitCode> {
    let service = opened.service;
    let writer = opened.writer;
    let mut writer_done = tokio::task::spawn_blocking(move || writer.join());
    if let Some(closes_at) = config.election.closes_at {
        let grace = std::time::Duration::from_millis(config.limits.request_timeout_ms);
        let final_path = config.storage.dir.join("final-checkpoint");
        tokio::spawn(close_at(closes_at, grace, service.clone(), final_path));
    }
    // Set once SIGTERM arrives: from then on the writer thread ends by design.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal = {
        let stopping = stopping.clone();
        async move {
            urna::edge::shutdown_signal().await;
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let serving = server.run(signal);
    tokio::pin!(serving);
    tokio::select! {
        biased;
        r = &mut serving => r.context("serving").map(|()| ExitCode::SUCCESS),
        ended = &mut writer_done => {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // Graceful shutdown drained the log: let the server finish its shutdown.
                return serving.await.context("serving").map(|()| ExitCode::SUCCESS);
            }
            // The writer stopped while serving: a failed write or fsync poisoned the store,
            // or the thread died. No retry on the same files: exit, and let the next start
            // recover from what is durable (docs/ARCHITECTURE.md, "The durability contract").
            let why = match ended {
                Ok(Ok(())) if service.log().is_poisoned() => "a write or fsync failed",
                Ok(Ok(())) => "it stopped",
                _ => "it panicked",
            };
            tracing::error!("the log writer ended while serving ({why}); exiting to recover from disk");
            std::process::exit(70);
        }
    }
}

/// At `closes_at` the ballot layer refuses every later ballot by itself (the window is
/// judged on each ballot's receive time). Once the ballots received before it have had
/// `grace` to be sequenced, the checkpoint then current is the election's final one: it is
/// written to `path` and logged, for observers to pin.
async fn close_at(
    closes_at: time::OffsetDateTime,
    grace: std::time::Duration,
    service: Arc<urna::service::Service>,
    path: PathBuf,
) {
    let wait = closes_at - time::OffsetDateTime::now_utc();
    let wait = std::time::Duration::try_from(wait).unwrap_or_default() + grace;
    tokio::time::sleep(wait).await;
    let cp = service.log().checkpoint();
    let note = String::from_utf8_lossy(&cp.note).into_owned();
    match std::fs::write(&path, &cp.note) {
        Ok(()) => {
            tracing::info!(size = cp.size, path = %path.display(), checkpoint = %note, "election closed: final checkpoint")
        }
        Err(e) => {
            tracing::error!(error = %e, checkpoint = %note, "election closed; writing the final checkpoint failed")
        }
    }
}
