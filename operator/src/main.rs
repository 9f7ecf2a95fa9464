//! `verdant-operator`: the thin binary around the operator library.

use clap::{Parser, Subcommand};

/// Verdant: distributed GPU training that follows the sun and the wind.
#[derive(Parser)]
#[command(name = "verdant-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
    Crds,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            for (_, crd) in verdant_crds::manifests::all() {
                println!("---\n{}", verdant_crds::manifests::render(&crd)?);
            }
        }
    }
    Ok(())
}
