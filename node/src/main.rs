//! `contactpoint-node`: reads the configuration, starts tracing, binds, serves.
use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// An authority's node of the children's index: its records in its own
/// PostgreSQL, served over gRPC with mutual TLS.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The node's TOML configuration. Every field can also be set from the
    /// environment as CONTACTPOINT_NODE_<FIELD> (nested: CONTACTPOINT_NODE_TLS__CA).
    #[arg(long, short, env = "CONTACTPOINT_NODE_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit without serving.
    #[arg(long)]
    check: bool,
    /// Verify the node's audit log end to end (every hash, link and signed
    /// checkpoint) and exit: 0 if intact, 1 naming each break.
    #[arg(long)]
    verify_audit: bool,
    /// With --verify-audit: the gateway's countersigned checkpoints of this
    /// node (`contactpoint-gateway --export-witness CODE`), one JSON line
    /// each, so a log cut back together with its own checkpoints is caught.
    #[arg(long, requires_all = ["verify_audit", "witness_cert"])]
    witness: Option<PathBuf>,
    /// The gateway's certificate (PEM), whose key countersigned them.
    #[arg(long, requires = "witness")]
    witness_cert: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Registered first, so a SIGHUP that arrives while the server starts
    // (systemctl reload) is not the default "terminate"; the server reloads
    // on each one once it serves.
    let _hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let config = contactpoint_node::NodeConfig::load(args.config.as_deref())?;
    contactpoint_ops::init_logging(config.log_format);
    if args.verify_audit {
        let witnesses = match (&args.witness, &args.witness_cert) {
            (Some(file), Some(cert)) => Some((read_witnesses(file)?, cert.clone())),
            _ => None,
        };
        return verify_audit(&config, witnesses).await;
    }
    if args.check {
        println!(
            "configuration of {} ({}) is valid",
            config.authority_name, config.authority_code
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    contactpoint_node::serve(config, listener, shutdown_signal()).await?;
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

fn read_witnesses(
    path: &std::path::Path,
) -> anyhow::Result<Vec<contactpoint_proto::audit::Witness>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the witness file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            contactpoint_proto::audit::Witness::from_line(line)
                .map_err(|error| anyhow::anyhow!("{} line {}: {error}", path.display(), index + 1))
        })
        .collect()
}

async fn verify_audit(
    config: &contactpoint_node::NodeConfig,
    witnesses: Option<(Vec<contactpoint_proto::audit::Witness>, PathBuf)>,
) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the node's database")?;
    tokio::spawn(connection);
    let trusted =
        contactpoint_node::audit::public_key_of(&config.audit_key).map_err(anyhow::Error::msg)?;
    let mut report = contactpoint_node::audit::verify(&client, &trusted).await?;
    if let Some((witnesses, cert)) = witnesses {
        let gateway_key = contactpoint_mtls::public_key(&cert)?;
        contactpoint_node::audit::check_witnesses(
            &mut report,
            &config.authority_code,
            &witnesses,
            &gateway_key,
        );
    }
    println!(
        "{} audit entries, {} signed checkpoints, {} countersigned by the gateway",
        report.entries, report.checkpoints, report.witnessed
    );
    if report.is_intact() {
        println!("the audit log is intact");
        return Ok(());
    }
    for problem in &report.problems {
        println!("BROKEN: {problem}");
    }
    std::process::exit(1);
}
