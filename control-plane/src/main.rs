//! `only1mcp`: run the control plane, or validate a config file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use only1mcp_control_plane::app;
use only1mcp_control_plane::config::policy::Policy;
use only1mcp_control_plane::config::{Config, PolicySource};

#[derive(Parser)]
#[command(name = "only1mcp", about = "xDS control plane for MCP backends behind Envoy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane. Without --config it serves the built-in defaults.
    Serve {
        /// The config file; it is watched and reloaded on change.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the bound xDS and admin addresses here (JSON) once serving.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Path of the filter's .wasm as Envoy sees it; overrides `filter.wasm`.
        #[arg(long)]
        filter_wasm: Option<PathBuf>,
    },
    /// Check a config file (and the policy file it names), or with
    /// --policy a policy file, and print every problem with its path, line
    /// and column.
    Validate {
        file: PathBuf,
        /// FILE is a policy file.
        #[arg(long)]
        policy: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file, policy } => validate(&file, policy),
        Command::Serve { config, ready_file, filter_wasm } => {
            init_tracing();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(app::serve(config, ready_file, filter_wasm, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("only1mcp: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn validate(file: &std::path::Path, is_policy: bool) -> ExitCode {
    if is_policy {
        return match Policy::load(file) {
            Ok(p) => {
                println!("{}: OK (defaults and {} service override(s))", file.display(), p.services.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match Config::load(file) {
        Ok(cfg) => {
            println!("{}: OK ({} services, {} backends)", file.display(), cfg.services().len(), cfg.backends.len());
            if let PolicySource::File(p) = &cfg.policy {
                let dir = file.parent().unwrap_or(std::path::Path::new("."));
                let path = if p.is_relative() { dir.join(p) } else { p.clone() };
                return validate(&path, true);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
