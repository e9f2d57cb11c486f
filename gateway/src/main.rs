//! `contactpoint-gateway`: reads the configuration, starts tracing, binds, serves.
use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// The national gateway of the children's index: national partners and
/// practitioners reach every authority's node through it, over mutual TLS.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The gateway's TOML configuration. Every field can also be set from the
    /// environment as CONTACTPOINT_GATEWAY_<FIELD> (nested: CONTACTPOINT_GATEWAY_TLS__CA).
    #[arg(long, short, env = "CONTACTPOINT_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit without serving.
    #[arg(long)]
    check: bool,
    /// Print the audit checkpoints of this authority's node (GSS code) that
    /// the gateway has countersigned, one JSON line each, for the node's
    /// `--verify-audit --witness`; then exit.
    #[arg(long, value_name = "CODE")]
    export_witness: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Registered first, so a SIGHUP that arrives while the server starts
    // (systemctl reload) is not the default "terminate"; the server reloads
    // on each one once it serves.
    let _hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let config = contactpoint_gateway::GatewayConfig::load(args.config.as_deref())?;
    contactpoint_ops::init_logging(config.log_format);
    if let Some(code) = &args.export_witness {
        let store = contactpoint_gateway::store::Store::open(&config.database_url, 1).await?;
        for witness in store.witnesses(code).await? {
            println!("{}", witness.to_line());
        }
        return Ok(());
    }
    if args.check {
        println!(
            "gateway configuration with {} nodes is valid",
            config.nodes.len()
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    contactpoint_gateway::serve(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
