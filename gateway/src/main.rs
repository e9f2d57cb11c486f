//! `contactpoint-gateway`: not built yet (issue 3).
use clap::Parser;

/// The national gateway of the children's index. Not built yet: it comes with
/// issue 3 (partner roles, routing by responsible authority, search across regions).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> std::process::ExitCode {
    Args::parse();
    eprintln!("contactpoint-gateway is not built yet (issue 3); run a node with contactpoint-node");
    std::process::ExitCode::FAILURE
}
