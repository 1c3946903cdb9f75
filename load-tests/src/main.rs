//! `urna-sim`: run an attack scenario against an Urna deployment and report what came back.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use urna_sim::Scenario;

#[derive(Parser)]
#[command(
    name = "urna-sim",
    version,
    about = "Urna's attack simulator: legitimate voters and hostile traffic, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file (see load-tests/scenarios/).
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

fn main() -> anyhow::Result<()> {
    let Command::Run {
        scenario,
        duration_s,
        target,
        ca,
        voters,
        json,
        allow_remote,
    } = Cli::parse().command;
    let mut s = Scenario::load(&scenario)?;
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
    s.check()?;
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
    Ok(())
}
