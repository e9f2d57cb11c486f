//! `cpctl`: the operator's command line. Makes the development certificate
//! authority, and talks to a node over mutual TLS: health, lookup, search,
//! and the demonstration (sample records, then a search and a lookup).
use anyhow::{bail, Context, Result};
use chrono::{Datelike, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::Channel;

use contactpoint_mtls::devca::{DevCa, Subject, Validity};
use contactpoint_mtls::TlsFiles;
use contactpoint_proto::sample;
use contactpoint_proto::v1::{self as pb, authority_node_client::AuthorityNodeClient};

mod render;

/// The operator's command line for the children's index.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Makes (or extends) a development CA in a folder: ca.pem, and a
    /// certificate and key per node and per client. Keeps an existing CA.
    DevCa {
        /// The folder for the PEM files.
        #[arg(long)]
        dir: PathBuf,
        /// A node certificate for this authority's GSS code (repeatable):
        /// node-<CODE>.pem and node-<CODE>.key, valid for localhost and 127.0.0.1.
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// A client certificate as ORGANISATION/NAME (repeatable):
        /// client-<organisation>.pem and .key.
        #[arg(long = "client")]
        clients: Vec<String>,
    },
    /// Waits until the node's health service says SERVING.
    Health {
        #[command(flatten)]
        node: NodeArgs,
        /// Seconds to keep trying.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Shows one record by identifier.
    Get {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
    /// Searches the node's records.
    Search {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        surname: String,
        #[arg(long, default_value = "")]
        forename: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        dob: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "")]
        postcode: String,
    },
    /// Records sample children at the node, then searches and looks one up.
    Demo {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Where the node is and who we are.
#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's address, for example https://localhost:7401.
    #[arg(long, env = "CPCTL_ENDPOINT")]
    endpoint: String,
    /// The federation CA certificate.
    #[arg(long, env = "CPCTL_CA")]
    ca: PathBuf,
    /// Our client certificate.
    #[arg(long, env = "CPCTL_CERT")]
    cert: PathBuf,
    /// Our private key.
    #[arg(long, env = "CPCTL_KEY")]
    key: PathBuf,
    /// The name the node's certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

impl NodeArgs {
    async fn channel(&self) -> Result<Channel> {
        let files = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: vec![],
        };
        let tls = contactpoint_mtls::client_tls(&files, &self.server_name)?;
        Channel::from_shared(self.endpoint.clone())?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach {}", self.endpoint))
    }

    async fn client(&self) -> Result<AuthorityNodeClient<Channel>> {
        Ok(AuthorityNodeClient::new(self.channel().await?))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::DevCa {
            dir,
            nodes,
            clients,
        } => dev_ca(&dir, &nodes, &clients),
        Command::Health { node, wait } => health(&node, wait).await,
        Command::Get { node, id } => {
            let record = node
                .client()
                .await?
                .get_record(pb::GetRecordRequest { id })
                .await?
                .into_inner();
            print!("{}", render::record(&record));
            Ok(())
        }
        Command::Search {
            node,
            surname,
            forename,
            dob,
            postcode,
        } => {
            let request = pb::SearchRecordsRequest {
                surname,
                forename,
                date_of_birth: dob.map(|d| sample::date(d.year(), d.month(), d.day())),
                postcode,
                limit: 0,
            };
            let found = node
                .client()
                .await?
                .search_records(request)
                .await?
                .into_inner();
            print!("{}", render::matches(&found.matches));
            Ok(())
        }
        Command::Demo { node } => demo(&node).await,
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn dev_ca(dir: &Path, nodes: &[String], clients: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca = if ca_cert.exists() && ca_key.exists() {
        DevCa::load(
            &std::fs::read_to_string(&ca_cert)?,
            &std::fs::read_to_string(&ca_key)?,
        )?
    } else {
        let ca = DevCa::generate("ContactPoint development CA")?;
        write(dir, "ca.pem", ca.cert_pem())?;
        write(dir, "ca.key", ca.key_pem())?;
        ca
    };
    for code in nodes {
        let issued = ca.issue(&Subject {
            organisation: code,
            unit: Some("node"),
            common_name: &format!("node {code}"),
            server_names: &["localhost", "127.0.0.1"],
            validity: Validity::Current,
        })?;
        write(dir, &format!("node-{code}.pem"), &issued.cert_pem)?;
        write(dir, &format!("node-{code}.key"), &issued.key_pem)?;
    }
    for client in clients {
        let Some((organisation, name)) = client.split_once('/') else {
            bail!("--client {client:?}: expected ORGANISATION/NAME");
        };
        let issued = ca.issue(&Subject {
            organisation,
            unit: None,
            common_name: name,
            server_names: &[],
            validity: Validity::Current,
        })?;
        let stem = organisation
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        write(dir, &format!("client-{stem}.pem"), &issued.cert_pem)?;
        write(dir, &format!("client-{stem}.key"), &issued.key_pem)?;
    }
    println!("development CA in {}", dir.display());
    Ok(())
}

async fn health(node: &NodeArgs, wait: u64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let attempt = async {
            let mut client =
                tonic_health::pb::health_client::HealthClient::new(node.channel().await?);
            let request = tonic_health::pb::HealthCheckRequest {
                service: "contactpoint.v1.AuthorityNode".into(),
            };
            Ok::<_, anyhow::Error>(client.check(request).await?.into_inner().status)
        };
        match attempt.await {
            Ok(status)
                if status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 =>
            {
                println!("{} is serving", node.endpoint);
                return Ok(());
            }
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(status) => bail!("{} is not serving (status {status})", node.endpoint),
            Err(error) => {
                return Err(error.context(format!("{} did not become healthy", node.endpoint)))
            }
        }
    }
}

async fn demo(node: &NodeArgs) -> Result<()> {
    let mut client = node.client().await?;
    let today = Utc::now().date_naive();
    let baby_born = today - chrono::Duration::days(120);
    let born = |d: chrono::NaiveDate| sample::date(d.year(), d.month(), d.day());

    println!("== Recording sample children at {}", node.endpoint);
    let amelia = client
        .create_record(sample::every_paragraph(born(baby_born)))
        .await?
        .into_inner();
    println!(
        "  {}  {} (every paragraph of Schedule 1)",
        amelia.id,
        render::name(&amelia.name)
    );
    for (given, family, years, postcode) in [
        ("Oliver", "Hartley", 7, "TS24 8AH"),
        ("Noah James", "Bennett", 12, "TS25 1QP"),
    ] {
        let dob =
            today.with_year(today.year() - years).unwrap_or(today) - chrono::Duration::days(40);
        let request = sample::child_request(given, family, born(dob), postcode);
        let record = client.create_record(request).await?.into_inner();
        println!("  {}  {}", record.id, render::name(&record.name));
    }

    println!("\n== Search: surname \"hartley\", date of birth {baby_born}");
    let found = client
        .search_records(pb::SearchRecordsRequest {
            surname: "hartley".into(),
            date_of_birth: Some(born(baby_born)),
            ..Default::default()
        })
        .await?
        .into_inner();
    print!("{}", render::matches(&found.matches));

    let first = found.matches.first().context("the search found nothing")?;
    println!("\n== Lookup: {}", first.id);
    let record = client
        .get_record(pb::GetRecordRequest {
            id: first.id.clone(),
        })
        .await?
        .into_inner();
    print!("{}", render::record(&record));

    let typo = mistype(&first.id);
    println!("\n== Lookup with a mistyped identifier: {typo}");
    match client.get_record(pb::GetRecordRequest { id: typo }).await {
        Ok(_) => bail!("a mistyped identifier was accepted"),
        Err(status) => println!("  refused: {:?}: {}", status.code(), status.message()),
    }
    Ok(())
}

/// The identifier with two neighbouring serial digits swapped (or one changed).
fn mistype(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let i = chars.len() - 5;
    if chars[i] == chars[i - 1] {
        chars[i] = if chars[i] == '9' {
            '0'
        } else {
            char::from(chars[i] as u8 + 1)
        };
    } else {
        chars.swap(i, i - 1);
    }
    chars.into_iter().collect()
}
