//! `mcp-test-backend`: an MCP server over streamable HTTP for tests and
//! demos, with faults switchable at run time on a separate control port.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use only1mcp_tests::backend::fault::Fault;
use only1mcp_tests::backend::mcp::{Era, Mcp};
use only1mcp_tests::backend::server::{control_router, serve_mcp, Backend, Ready};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "Test MCP backend with fault injection")]
struct Args {
    /// Name returned by the `whoami` tool.
    #[arg(long)]
    name: String,
    /// MCP listen address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Control API listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// MCP path.
    #[arg(long, default_value = "/mcp")]
    path: String,
    /// Protocol eras spoken.
    #[arg(long, value_enum, default_value = "both")]
    era: Era,
    /// Answer successful requests as text/event-stream, as many SDK servers do.
    #[arg(long)]
    sse: bool,
    /// Initial fault as JSON, e.g. '{"mode":"http_status","status":503}'.
    #[arg(long)]
    fault: Option<String>,
    /// Also serve the same backend on this many more ports (same IP, any
    /// free port): many endpoints from one process, for load benchmarks.
    #[arg(long, default_value_t = 0)]
    extra_listeners: usize,
    /// Write the bound addresses here (JSON) once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let fault: Fault = match &args.fault {
        Some(f) => serde_json::from_str(f).context("--fault")?,
        None => Fault::default(),
    };
    let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let backend = Backend::new(Mcp::new(args.name.clone(), args.era), args.path.clone(), args.sse, fault, seed);
    let mcp_listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let control_listener = TcpListener::bind(args.control).await.with_context(|| format!("binding {}", args.control))?;
    let mut extra = Vec::with_capacity(args.extra_listeners);
    for _ in 0..args.extra_listeners {
        let l = TcpListener::bind(SocketAddr::new(args.listen.ip(), 0)).await.context("binding an extra listener")?;
        extra.push(l);
    }
    let extra_addrs = extra.iter().map(|l| l.local_addr()).collect::<Result<Vec<_>, _>>()?;
    let ready = Ready { mcp: mcp_listener.local_addr()?, control: control_listener.local_addr()?, extra: extra_addrs };
    tracing::info!(name = args.name, mcp = %ready.mcp, control = %ready.control, "test backend listening");
    if let Some(path) = &args.ready_file {
        std::fs::write(path, serde_json::to_vec(&ready)?)?;
    }
    let control_app = control_router(backend.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(control_listener, control_app).await {
            tracing::error!(error = %e, "control API stopped");
        }
    });
    for l in extra {
        let b = backend.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_mcp(b, l).await {
                tracing::error!(error = %e, "extra listener stopped");
            }
        });
    }
    serve_mcp(backend, mcp_listener).await
}
