//! The command line of `verdant-operator`.

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, RunArgs};

/// Verdant: distributed GPU training that follows the sun and the wind.
#[derive(Parser)]
#[command(name = "verdant-operator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: the TrainingJob controller, the green scheduling cycle and the
    /// HTTP server. Uses KUBECONFIG, or the in-cluster ServiceAccount.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, for `kubectl apply --server-side -f -`.
    Crds,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => {
                init_tracing(args.log_format);
                crate::run::run(args).await
            }
            Command::Crds => {
                for (_, crd) in verdant_crds::manifests::all() {
                    println!("---\n{}", verdant_crds::manifests::render(&crd)?);
                }
                Ok(())
            }
        }
    })
}
