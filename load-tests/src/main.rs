//! `urna-sim`: run an attack scenario against an Urna deployment and report what came back.
//!
//! Exit codes: 0 the run finished and the voters got what the scenario's `expect` asks;
//! 1 they did not (a legitimate ballot refused or lost past the bounds, a receipt that
//! fails its offline check); 2 the command line or the scenario is wrong (nothing was
//! sent); 3 the target could not be reached (connection refused, no answer, TLS handshake
//! failed: nothing was sent); 4 the closing audit of the target's log failed (a receipt a
//! voter got is not in the log as given, a hostile ballot was logged, the log did not grow
//! consistently from the checkpoint at the start, or the audit could not be done). 4 wins
//! over 1: a log that breaks its promises matters more than a slow voter.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use urna_sim::net::Unreachable;
use urna_sim::Scenario;

/// Exit code: the run finished, but the voters did not get what `expect` asks.
const EXIT_FAILED: u8 = 1;
/// Exit code: the command line or the scenario is wrong (clap's own code for usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit code: the target could not be reached before the run.
const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the closing audit of the target's log failed.
const EXIT_AUDIT: u8 = 4;

#[derive(Parser)]
#[command(
    name = "urna-sim",
    version,
    about = "Urna's attack simulator: legitimate voters and hostile traffic, side by side",
    after_help = "Exit codes: 0 the run finished and the voters got what the scenario's \
                  [expect] asks (default: 100% accepted, every receipt verified); 1 they did \
                  not; 2 bad command line or scenario (nothing \
                  sent); 3 target unreachable: connection refused, no answer, or TLS \
                  handshake failed (nothing sent); 4 the closing audit failed: a voter's \
                  receipt not in the log as given, a hostile ballot logged, the log not \
                  grown consistently from the start, or not audited (4 wins over 1).\n\n\
                  Every run has a seed (scenario `seed`, or --seed; else drawn and printed): \
                  replay a run with it. Live progress shows on a terminal only.\n\n\
                  Kinds, scenarios and the report: load-tests/README.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file (see load-tests/scenarios/). The overrides below apply before
    /// the scenario is checked, so they can complete a file that leaves them out.
    Run {
        scenario: PathBuf,
        /// Override the scenario's duration, in seconds.
        #[arg(long)]
        duration_s: Option<u64>,
        /// Override the target `host:port`.
        #[arg(long)]
        target: Option<std::net::SocketAddr>,
        /// Override the CA certificate file.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Override the voters file.
        #[arg(long)]
        voters: Option<PathBuf>,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the report as one self-contained HTML file (charts inline).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Override the scenario's seed (replay a run: the seed is in its report).
        #[arg(long)]
        seed: Option<u64>,
        /// Override the roll file the closing audit checks the log's rules against.
        #[arg(long)]
        roll: Option<PathBuf>,
        /// The server's pid on this machine: its RSS and CPU are sampled each second.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Allow a target outside loopback. Only ever aim this at a deployment you run.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Re-render a saved JSON report (`run --json`) as HTML, and print its summary.
    Report {
        json: PathBuf,
        /// Where to write the HTML (default: the JSON's path with `.html`).
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

/// How a run ended, for the exit code.
enum Outcome {
    Passed,
    Failed,
    AuditFailed,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(EXIT_FAILED),
        Ok(Outcome::AuditFailed) => ExitCode::from(EXIT_AUDIT),
        Err(e) => {
            eprintln!("urna-sim: {e:#}");
            if e.downcast_ref::<Unreachable>().is_some() {
                ExitCode::from(EXIT_UNREACHABLE)
            } else {
                ExitCode::from(EXIT_USAGE)
            }
        }
    }
}

/// Runs the command; how the run came out.
fn run(command: Command) -> anyhow::Result<Outcome> {
    let (
        scenario,
        duration_s,
        target,
        ca,
        voters,
        json,
        html,
        seed,
        roll,
        server_pid,
        allow_remote,
    ) = match command {
        Command::Report { json, html } => return rerender(&json, html),
        Command::Run {
            scenario,
            duration_s,
            target,
            ca,
            voters,
            json,
            html,
            seed,
            roll,
            server_pid,
            allow_remote,
        } => (
            scenario,
            duration_s,
            target,
            ca,
            voters,
            json,
            html,
            seed,
            roll,
            server_pid,
            allow_remote,
        ),
    };
    // Read, override, then check: an override can repair what the file leaves out.
    let mut s = Scenario::read(&scenario)?;
    if let Some(d) = duration_s {
        s.duration_s = d;
    }
    if let Some(t) = target {
        s.target = t;
    }
    if ca.is_some() {
        s.ca = ca;
    }
    if voters.is_some() {
        s.voters = voters;
    }
    if seed.is_some() {
        s.seed = seed;
    }
    if roll.is_some() {
        s.roll = roll;
    }
    s.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
    anyhow::ensure!(
        allow_remote || s.target.ip().is_loopback(),
        "target {} is not on loopback; pass --allow-remote only for a deployment you run",
        s.target
    );
    let rt = tokio::runtime::Runtime::new()?;
    let opts = urna_sim::RunOptions {
        scenario_path: Some(scenario.clone()),
        server_pid,
        progress: true,
    };
    let report = rt.block_on(urna_sim::run_with(&s, &opts))?;
    print!("{}", report.human());
    let text = serde_json::to_vec_pretty(&report)?;
    if let Some(path) = json {
        std::fs::write(&path, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(path) = html {
        // Rendered from the JSON text, as `urna-sim report` renders a saved one: the same
        // parse of the same floats, so the two pages are the same bytes.
        let value: serde_json::Value = serde_json::from_slice(&text)?;
        std::fs::write(&path, urna_sim::html::render_json(&value)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(if report.audit.as_ref().is_some_and(|a| !a.passed) {
        Outcome::AuditFailed
    } else if report.verdict.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

/// `urna-sim report`: the saved report as HTML, and its outcome as the exit code.
fn rerender(json: &std::path::Path, html: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let text = std::fs::read(json).map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?;
    let view: urna_sim::html::RunView = serde_json::from_value(value.clone())
        .map_err(|e| anyhow::anyhow!("{}: not an urna-sim report: {e}", json.display()))?;
    let out = html.unwrap_or_else(|| json.with_extension("html"));
    std::fs::write(&out, urna_sim::html::render(&view))
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(if view.audit.as_ref().is_some_and(|a| !a.passed) {
        Outcome::AuditFailed
    } else if view.verdict.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
