//! `urna-sim`: run an attack scenario against an Urna deployment and report what came back.
//!
//! Exit codes: 0 the run finished and the voters got what the scenario's `expect` asks;
//! 1 they did not (a legitimate ballot refused or lost past the bounds, a receipt that
//! fails its offline check); 2 the command line or the scenario is wrong (nothing was
//! sent); 3 the target could not be reached (connection refused, no answer, TLS handshake
//! failed: nothing was sent).
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

#[derive(Parser)]
#[command(
    name = "urna-sim",
    version,
    about = "Urna's attack simulator: legitimate voters and hostile traffic, side by side",
    after_help = "Exit codes: 0 the run finished and the voters got what the scenario's \
                  [expect] asks (default: 100% accepted, every receipt verified); 1 they did \
                  not; 2 bad command line or scenario (nothing \
                  sent); 3 target unreachable: connection refused, no answer, or TLS \
                  handshake failed (nothing sent).\n\nKinds, scenarios and the report: \
                  load-tests/README.md."
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
        /// Allow a target outside loopback. Only ever aim this at a deployment you run.
        #[arg(long)]
        allow_remote: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
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

/// Runs the command; whether the run passed its `expect`.
fn run(command: Command) -> anyhow::Result<bool> {
    let Command::Run {
        scenario,
        duration_s,
        target,
        ca,
        voters,
        json,
        allow_remote,
    } = command;
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
    s.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
    anyhow::ensure!(
        allow_remote || s.target.ip().is_loopback(),
        "target {} is not on loopback; pass --allow-remote only for a deployment you run",
        s.target
    );
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(urna_sim::run(&s))?;
    print!("{}", report.human());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report.verdict.passed)
}
