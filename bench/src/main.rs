//! cpbench: the benchmark harness of the federation.
//!
//! `cpbench run` starts a whole federation from the workspace's own
//! binaries (one node process per authority, the gateway, nginx as a plain
//! gRPC proxy, a bare tonic server), loads a synthetic population and
//! measures it, printing one table per question; `scripts/bench` runs it.
//! `cpbench population` writes the synthetic population as JSON lines,
//! one file per authority, for `cpctl load`.
mod fleet;
mod load;
mod population;
mod procs;
mod run;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cpbench", about = "The federation's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every measurement in one go and prints the tables.
    Run(Box<run::RunArgs>),
    /// Writes a synthetic population: one JSON-lines file per authority
    /// (the protobuf JSON of CreateRecordRequest, which `cpctl load` reads).
    Population {
        #[arg(long)]
        records: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The reference date: every child is under 18 on it (default today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "data/authorities.csv")]
        authorities: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let report = run::run(&args).await?;
            let text: String = report
                .iter()
                .map(run::Section::render)
                .collect::<Vec<_>>()
                .join("\n");
            println!("{text}");
            if let Some(path) = &args.markdown {
                std::fs::write(path, &text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Population {
            records,
            seed,
            as_of,
            authorities,
            out,
        } => {
            let as_of = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let population = population::Population::new(
                seed,
                records,
                as_of,
                population::read_authorities(&authorities)?,
            );
            std::fs::create_dir_all(&out)?;
            for (index, authority) in population.authorities().iter().enumerate() {
                let path = out.join(format!("{}.jsonl", authority.code));
                let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                for record in population.records(index) {
                    serde_json::to_writer(&mut file, &record)?;
                    file.write_all(b"\n")?;
                }
                file.flush()?;
                eprintln!(
                    "{} {:<40} {:>9} records",
                    authority.code,
                    authority.name,
                    population.sizes()[index]
                );
            }
            Ok(())
        }
    }
}
