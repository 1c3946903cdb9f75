//! The `urna` command line: a thin layer over the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "urna",
    version,
    about = "Vote-submission endpoint with a Merkle-logged ballot store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the ballot endpoint (TLS, the L1–L4 edge, then the ballot layer and the log).
    Serve {
        /// The configuration file; without it, the embedded default (config/urna.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = urna::config::Config::load(config_path.as_deref())?;
    urna::edge::telemetry::init_tracing(config.server.log_format);
    let tls = urna::edge::prepare_tls(&config).context("preparing TLS")?;
    let source = config_path.map_or("embedded default".to_owned(), |p| p.display().to_string());
    println!("config:      {source}");
    println!(
        "certificate: {}{}",
        tls.cert.display(),
        if tls.generated {
            " (generated, self-signed)"
        } else {
            ""
        }
    );
    println!("key:         {}", tls.key.display());
    println!("storage:     {}", config.storage.dir.display());
    println!("url:         https://{}/", config.server.listen);
    if let Some(plain) = config.server.listen_plain {
        println!("plain http:  http://{plain}/");
    }
    // The edge is ready (`urna::edge::serve(&config, backend, urna::edge::shutdown_signal())`);
    // the backend is the ballot layer and the log, wired when those land.
    anyhow::bail!("the ballot backend (src/ballot + src/log) is not wired into `serve` yet")
}
