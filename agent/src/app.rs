//! The process: parses the command line, starts logging and the runtime, and runs the
//! command. `verdant-agent`'s `main` and the e2e tests' copy of the binary call [`main`].

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread is plenty for the HTTP server, reporting and attribution; sampling has
    // its own thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => {
                init_tracing(args.log_format);
                crate::run::run(*args).await
            }
            Command::Sample(args) => {
                init_tracing(LogFormat::Text);
                crate::run::sample(args).await
            }
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn,h2=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}
