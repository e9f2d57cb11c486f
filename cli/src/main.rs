//! `cpctl`: the command line for authorities, partners and operators. It
//! speaks to a node or the gateway over mutual TLS with the user's own
//! certificate: who am I, search, show, create, update, load, transfer,
//! audit, notifications, health; and it keeps a development certificate
//! authority (`pki`). Tables by default, `--json` for scripts; the exit code
//! says how a call ended (see `--help`).
use anyhow::{bail, Context, Result};
use chrono::Datelike;
use clap::Parser;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use contactpoint_proto::sample;
use contactpoint_proto::v1 as pb;

mod admin;
mod args;
mod demo;
mod load;
mod pki;
mod render;

use admin::{audit_command, transfer_command};
use args::{Cli, Command, NodeArgs};
use demo::{federation_demo, seed};
use pki::{dev_ca, pki_command};

/// Some of the work was done, some refused (exit code 8).
#[derive(Debug)]
struct Partial(String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}

/// The exit code for how a command failed (see `EXIT_CODES`).
fn exit_code(error: &anyhow::Error) -> u8 {
    use tonic::Code;
    if error.downcast_ref::<Partial>().is_some() {
        return 8;
    }
    let Some(status) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<tonic::Status>())
    else {
        return 1;
    };
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => 3,
        Code::NotFound => 4,
        Code::PermissionDenied | Code::Unauthenticated => 5,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => 6,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => 7,
        _ => 1,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error
                .chain()
                .find_map(|cause| cause.downcast_ref::<tonic::Status>())
            {
                Some(status) => {
                    // A limit's refusal may say when to try again.
                    let retry = status
                        .metadata()
                        .get("retry-after-ms")
                        .and_then(|value| value.to_str().ok())
                        .map(|ms| format!(" (try again in {ms} ms)"))
                        .unwrap_or_default();
                    eprintln!("refused: {:?}: {}{retry}", status.code(), status.message())
                }
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Prints `value` as JSON, or `text` for people.
fn emit<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not the expected JSON", path.display()))
}

async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Pki { action } => pki_command(action),
        Command::DevCa {
            dir,
            nodes,
            clients,
            gateway,
        } => dev_ca(&dir, &nodes, &clients, gateway),
        Command::Whoami { target } => {
            let me = if target.is_gateway().await? {
                target
                    .gateway()
                    .await?
                    .who_am_i(pb::WhoAmIRequest {})
                    .await?
            } else {
                target
                    .client()
                    .await?
                    .who_am_i(pb::WhoAmIRequest {})
                    .await?
            }
            .into_inner();
            emit(json, &me, || render::whoami(&me))
        }
        Command::Health {
            node,
            wait,
            service,
        } => health(&node, wait, &service).await,
        Command::Show {
            node,
            id,
            reason,
            override_shielding,
        } => {
            let request = pb::GetRecordRequest {
                id,
                reason,
                override_shielding,
                ..Default::default()
            };
            let record = if node.is_gateway().await? {
                node.gateway().await?.get_record(request).await?
            } else {
                node.client().await?.get_record(request).await?
            }
            .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Search {
            node,
            surname,
            forename,
            dob,
            postcode,
            year,
            exact,
            reason,
        } => {
            let mode = if exact {
                pb::MatchMode::Exact
            } else {
                pb::MatchMode::Tolerant
            };
            let request = pb::SearchRecordsRequest {
                surname,
                forename,
                date_of_birth: dob.map(wire_date),
                postcode,
                year_of_birth: year.unwrap_or_default(),
                mode: mode as i32,
                reason,
                ..Default::default()
            };
            let (matches, unanswered) = if node.is_gateway().await? {
                let found = node
                    .gateway()
                    .await?
                    .search_records(request)
                    .await?
                    .into_inner();
                (found.matches, found.unanswered)
            } else {
                let found = node
                    .client()
                    .await?
                    .search_records(request)
                    .await?
                    .into_inner();
                (found.matches, vec![])
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "matches": matches,
                        "unanswered": unanswered,
                    }))?
                );
            } else {
                print!("{}", render::matches_table(&matches));
                for missing in &unanswered {
                    println!(
                        "partial results: {} ({}) did not answer: {}",
                        missing.name, missing.code, missing.reason
                    );
                }
            }
            Ok(())
        }
        Command::Create { node, file } => {
            let request: pb::CreateRecordRequest = read_json(&file)?;
            let record = node
                .client()
                .await?
                .create_record(request)
                .await?
                .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Update {
            node,
            id,
            version,
            file,
        } => {
            let details: pb::RecordDetails = read_json(&file)?;
            let record = node
                .client()
                .await?
                .update_record(pb::UpdateRecordRequest {
                    id,
                    expected_version: version,
                    details: Some(details),
                })
                .await?
                .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Load {
            node,
            file,
            rejected,
        } => load::load(node.channel().await?, &file, rejected, json).await,
        Command::Transfer { action } => transfer_command(action, json).await,
        Command::Audit { action } => audit_command(action, json).await,
        Command::Notifications { node, after } => {
            let told = node
                .client()
                .await?
                .list_notifications(pb::ListNotificationsRequest {
                    after_id: after,
                    limit: 0,
                })
                .await?
                .into_inner();
            emit(json, &told, || render::notifications(&told.notifications))
        }
        Command::Seed { node, set } => seed(&node, set).await,
        Command::FederationDemo { endpoint, pki } => federation_demo(&endpoint, &pki).await,
    }
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
            Ok(status) => bail!(
                "{} is not serving (status {})",
                node.endpoint,
                tonic_health::pb::health_check_response::ServingStatus::try_from(status)
                    .map_or_else(|_| status.to_string(), |s| s.as_str_name().to_owned())
            ),
            Err(error) => {
                return Err(error.context(format!("{} did not become healthy", node.endpoint)))
            }
        }
    }
}

/// A date as the contract carries it.
fn wire_date(day: chrono::NaiveDate) -> pb::Date {
    sample::date(day.year(), day.month(), day.day())
}
