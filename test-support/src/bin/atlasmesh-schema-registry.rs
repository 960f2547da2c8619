//! Confluent-API-compatible schema registry stand-in (Avro only) for local stacks and tests.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// Confluent-API-compatible schema registry stand-in (Avro only).
///
/// Implements the REST subset used by schema_registry_converter and operators: register /
/// lookup / fetch by id and subject version, compatibility checks (BACKWARD by default,
/// BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE) done with
/// apache-avro, global and per-subject config, subject deletion, and GET /health for readiness probes.
#[derive(Debug, Parser)]
#[command(name = "atlasmesh-schema-registry", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081", env = "SCHEMA_REGISTRY_LISTEN")]
    listen: SocketAddr,

    /// JSON file holding the registry state: loaded at start if it exists, rewritten atomically
    /// after every change. Without it the registry is in memory only.
    #[arg(long, value_name = "PATH", env = "SCHEMA_REGISTRY_DATA")]
    data: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, data = ?args.data, "schema registry listening");
    tokio::select! {
        r = atlasmesh_test_support::serve(listener, args.data) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
