//! `verdant-sim`: the simulator's command line (`cargo run --release -p verdant-sim -- …`).
//! The operator's binary does not link the simulator.

use clap::Parser;

/// Replays a GPU job trace on real weather through Verdant's placement engine.
#[derive(Parser)]
#[command(name = "verdant-sim", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    args: verdant_sim::cli::SimulateArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    verdant_sim::cli::init_tracing();
    let result = verdant_sim::cli::run(&cli.args)?;
    for file in &result.files {
        println!("{}", file.display());
    }
    Ok(())
}
