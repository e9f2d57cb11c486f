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
use contactpoint_proto::v1::{
    self as pb, authority_node_client::AuthorityNodeClient, gateway_client::GatewayClient,
};

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
        /// Also a certificate for the gateway (gateway.pem, gateway.key):
        /// organisation "ContactPoint gateway", valid for localhost.
        #[arg(long)]
        gateway: bool,
    },
    /// Waits until the node's health service says SERVING.
    Health {
        #[command(flatten)]
        node: NodeArgs,
        /// Seconds to keep trying.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// The gRPC service to ask about.
        #[arg(long, default_value = "contactpoint.v1.AuthorityNode")]
        service: String,
    },
    /// Shows one record by identifier.
    Get {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
        /// Why you are looking (required; audited).
        #[arg(long)]
        reason: String,
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
        /// Why you are searching (required; audited with the search).
        #[arg(long)]
        reason: String,
    },
    /// Starts a transfer through the gateway and waits for it to end.
    Transfer {
        #[command(flatten)]
        gateway: NodeArgs,
        /// The record's identifier.
        #[arg(long)]
        id: String,
        /// GSS code of the authority becoming responsible.
        #[arg(long)]
        to: String,
    },
    /// Lists an authority's transfers in and out, through the gateway.
    Transfers {
        #[command(flatten)]
        gateway: NodeArgs,
        /// GSS code of the authority.
        #[arg(long)]
        authority: String,
    },
    /// Records a set of sample children at a node (0, 1 or 2).
    Seed {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        set: usize,
    },
    /// Through the gateway: searches and a lookup as the NSPCC, a search as
    /// the police, a refusal for an operator. Uses the certificates that
    /// `dev-ca` made in --pki.
    FederationDemo {
        /// The gateway's address, for example https://localhost:7400.
        #[arg(long)]
        endpoint: String,
        /// The development CA folder.
        #[arg(long)]
        pki: PathBuf,
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
            gateway,
        } => dev_ca(&dir, &nodes, &clients, gateway),
        Command::Health {
            node,
            wait,
            service,
        } => health(&node, wait, &service).await,
        Command::Get { node, id, reason } => {
            let record = node
                .client()
                .await?
                .get_record(pb::GetRecordRequest {
                    id,
                    reason,
                    ..Default::default()
                })
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
            reason,
        } => {
            let request = pb::SearchRecordsRequest {
                surname,
                forename,
                date_of_birth: dob.map(wire_date),
                postcode,
                reason,
                ..Default::default()
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
        Command::Seed { node, set } => seed(&node, set).await,
        Command::Transfer { gateway, id, to } => {
            let mut client = GatewayClient::new(gateway.channel().await?);
            let started = client
                .start_transfer(pb::StartTransferRequest {
                    id,
                    to_authority: to,
                })
                .await?
                .into_inner();
            print!(
                "{}",
                render::transfer(&wait_for_transfer(&mut client, &started.transfer_id).await?)
            );
            Ok(())
        }
        Command::Transfers { gateway, authority } => {
            let mut client = GatewayClient::new(gateway.channel().await?);
            let listed = client
                .list_transfers(pb::ListTransfersRequest { authority })
                .await?
                .into_inner();
            println!("out:");
            listed
                .outgoing
                .iter()
                .for_each(|t| print!("{}", render::transfer(t)));
            println!("in:");
            listed
                .incoming
                .iter()
                .for_each(|t| print!("{}", render::transfer(t)));
            Ok(())
        }
        Command::FederationDemo { endpoint, pki } => federation_demo(&endpoint, &pki).await,
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn dev_ca(dir: &Path, nodes: &[String], clients: &[String], gateway: bool) -> Result<()> {
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
    if gateway {
        let issued = ca.issue(&Subject {
            organisation: "ContactPoint gateway",
            unit: Some("gateway"),
            common_name: "gateway",
            server_names: &["localhost", "127.0.0.1"],
            validity: Validity::Current,
        })?;
        write(dir, "gateway.pem", &issued.cert_pem)?;
        write(dir, "gateway.key", &issued.key_pem)?;
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

async fn health(node: &NodeArgs, wait: u64, service: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let attempt = async {
            let mut client =
                tonic_health::pb::health_client::HealthClient::new(node.channel().await?);
            let request = tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
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

/// The date of birth the sample namesakes share: about four months ago.
fn shared_birthday() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(120)
}

fn wire_date(day: chrono::NaiveDate) -> pb::Date {
    sample::date(day.year(), day.month(), day.day())
}

/// Records one of three sets of fictional children at a node. Sets 0 and 1
/// each hold an Amelia Hartley born on the same day: namesakes in two regions.
async fn seed(node: &NodeArgs, set: usize) -> Result<()> {
    let mut client = node.client().await?;
    let today = Utc::now().date_naive();
    let years_ago = |years: i32| {
        today.with_year(today.year() - years).unwrap_or(today) - chrono::Duration::days(40)
    };
    let mut requests = Vec::new();
    match set {
        0 => {
            requests.push(sample::every_paragraph(wire_date(shared_birthday())));
            requests.push(sample::child_request(
                "Oliver",
                "Hartley",
                wire_date(years_ago(7)),
                "TS24 8AH",
            ));
        }
        1 => {
            requests.push(sample::child_request(
                "Amelia",
                "Hartley",
                wire_date(shared_birthday()),
                "TS1 2AA",
            ));
            requests.push(sample::child_request(
                "Noah James",
                "Bennett",
                wire_date(years_ago(12)),
                "TS5 6QA",
            ));
        }
        2 => {
            requests.push(sample::child_request(
                "Ella",
                "Hartley",
                wire_date(years_ago(10)),
                "TS10 1AB",
            ));
            requests.push(sample::child_request(
                "Jack",
                "Turner",
                wire_date(years_ago(4)),
                "TS11 6HT",
            ));
        }
        _ => bail!("--set is 0, 1 or 2"),
    }
    for request in requests {
        let record = client.create_record(request).await?.into_inner();
        let authority = record
            .responsible_authority
            .as_ref()
            .map_or("", |a| a.name.as_str());
        println!(
            "  {}  {:<26} recorded by {authority}",
            record.id,
            render::name(&record.name)
        );
    }
    Ok(())
}

/// Through the gateway: the NSPCC searches every region and looks a child
/// up; a police officer searches; an operator is refused.
async fn federation_demo(endpoint: &str, pki: &Path) -> Result<()> {
    let as_client = |stem: &str| NodeArgs {
        endpoint: endpoint.to_owned(),
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("client-{stem}.pem")),
        key: pki.join(format!("client-{stem}.key")),
        server_name: "localhost".into(),
    };
    let search = pb::SearchRecordsRequest {
        surname: "hartley".into(),
        date_of_birth: Some(wire_date(shared_birthday())),
        reason: "referral from a health visitor: finding the child's lead professional".into(),
        ..Default::default()
    };

    let mut nspcc = GatewayClient::new(as_client("nspcc").channel().await?);
    println!(
        "== As the NSPCC (Schedule 2 para 3), through the gateway: surname \"hartley\", born {}",
        shared_birthday()
    );
    let found = nspcc.search_records(search.clone()).await?.into_inner();
    print!("{}", render::matches(&found.matches));
    if found.unanswered.is_empty() {
        println!("  all {} authorities answered", found.authorities_asked);
    }
    for missing in &found.unanswered {
        println!(
            "  partial results: {} ({}) did not answer: {}",
            missing.name, missing.code, missing.reason
        );
    }

    let first = found.matches.first().context("the search found nothing")?;
    let authority = first
        .responsible_authority
        .as_ref()
        .map_or("", |a| a.name.as_str());
    println!(
        "\n== As the NSPCC: lookup {} (routed to {authority})",
        first.id
    );
    let record = nspcc
        .get_record(pb::GetRecordRequest {
            id: first.id.clone(),
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    print!("{}", render::record(&record));

    let mut police = GatewayClient::new(as_client("cleveland-police").channel().await?);
    let found = police.search_records(search.clone()).await?.into_inner();
    println!(
        "\n== As Cleveland Police (Schedule 3 para 3): the same search finds {} children",
        found.matches.len()
    );

    let mut operator = GatewayClient::new(as_client("contactpoint-operations").channel().await?);
    println!("\n== As an operator: the same search");
    match operator.search_records(search).await {
        Ok(_) => bail!("an operator was allowed to search"),
        Err(status) => println!("  refused: {:?}: {}", status.code(), status.message()),
    }

    let mut hartlepool = GatewayClient::new(as_client("e06000001").channel().await?);
    println!(
        "\n== Hartlepool's social worker: the child moves to Redcar and Cleveland; transfer {}",
        first.id
    );
    let transfer = hartlepool
        .start_transfer(pb::StartTransferRequest {
            id: first.id.clone(),
            to_authority: "E06000003".into(),
        })
        .await?
        .into_inner();
    let done = wait_for_transfer(&mut hartlepool, &transfer.transfer_id).await?;
    print!("{}", render::transfer(&done));
    let record = nspcc
        .get_record(pb::GetRecordRequest {
            id: first.id.clone(),
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let authority = record
        .responsible_authority
        .as_ref()
        .map_or("", |a| a.name.as_str());
    println!(
        "  the NSPCC's lookup of {} now reaches {authority}",
        record.id
    );
    let listed = hartlepool
        .list_transfers(pb::ListTransfersRequest {
            authority: "E06000001".into(),
        })
        .await?
        .into_inner();
    println!(
        "  Hartlepool's transfers: {} out, {} in",
        listed.outgoing.len(),
        listed.incoming.len()
    );

    let typo = mistype(&first.id);
    println!("\n== As the NSPCC: lookup with a mistyped identifier {typo}");
    match nspcc
        .get_record(pb::GetRecordRequest {
            id: typo,
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => bail!("a mistyped identifier was accepted"),
        Err(status) => println!("  refused: {:?}: {}", status.code(), status.message()),
    }
    Ok(())
}

/// Polls a transfer until it ends (or 30 seconds pass).
async fn wait_for_transfer(
    client: &mut GatewayClient<Channel>,
    transfer_id: &str,
) -> Result<pb::Transfer> {
    let ended = [
        pb::TransferState::Completed as i32,
        pb::TransferState::Cancelled as i32,
    ];
    for _ in 0..300 {
        let transfer = client
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            })
            .await?
            .into_inner();
        if ended.contains(&transfer.state) {
            return Ok(transfer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("transfer {transfer_id} did not end within 30 seconds")
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
