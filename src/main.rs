//! The `urna` command line: a thin layer over the library.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

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
    /// Voter roll tools.
    Roll {
        #[command(subcommand)]
        command: RollCommand,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Roll { command } => roll(command),
    }
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
            let mut k = BufWriter::new(
                File::create(&keys).with_context(|| format!("creating {}", keys.display()))?,
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
