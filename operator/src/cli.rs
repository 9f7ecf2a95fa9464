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
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, for `kubectl apply --server-side -f -`.
    Crds,
    /// Print a site's modelled output for every time of a weather file, as CSV
    /// (time,solar_kw,wind_kw,total_kw), to check the model against meters.
    Energy(crate::energy::cli::EnergyArgs),
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
    if let Command::Energy(args) = &cli.command {
        let result = crate::energy::cli::run(args, &mut std::io::stdout(), &mut std::io::stderr());
        // `| head` closing the pipe is not an error.
        return match result {
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                Ok(())
            }
            other => other,
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => {
                init_tracing(args.log_format);
                crate::run::run(*args).await
            }
            Command::Energy(_) => {
                unreachable!("handled before the runtime starts")
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
