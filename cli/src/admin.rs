//! `cpctl transfer` and `cpctl audit`: the gateway's transfers between
//! authorities (start, show, list, cancel), and audit subject access and
//! verification of a node's audit chain.
use anyhow::{bail, Context, Result};
use contactpoint_proto::v1 as pb;

use crate::args::{AuditAction, TransferAction};
use crate::demo::wait_for_transfer;
use crate::{emit, render};

pub(crate) async fn transfer_command(action: TransferAction, json: bool) -> Result<()> {
    match action {
        TransferAction::Start {
            gateway,
            id,
            to,
            merge_into,
            reason,
            wait,
        } => {
            let mut client = gateway.gateway().await?;
            let mut transfer = client
                .start_transfer(pb::StartTransferRequest {
                    id,
                    to_authority: to,
                    merge_into: merge_into.unwrap_or_default(),
                    reason: reason.unwrap_or_default(),
                })
                .await?
                .into_inner();
            if wait {
                transfer = wait_for_transfer(&mut client, &transfer.transfer_id).await?;
            }
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::Consent {
            gateway,
            transfer_id,
            wait,
        } => {
            let mut client = gateway.gateway().await?;
            let mut transfer = client
                .consent_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            if wait {
                transfer = wait_for_transfer(&mut client, &transfer.transfer_id).await?;
            }
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::Status {
            gateway,
            transfer_id,
        } => {
            let transfer = gateway
                .gateway()
                .await?
                .get_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::Cancel {
            gateway,
            transfer_id,
        } => {
            let transfer = gateway
                .gateway()
                .await?
                .cancel_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::List { gateway, authority } => {
            let listed = gateway
                .gateway()
                .await?
                .list_transfers(pb::ListTransfersRequest { authority })
                .await?
                .into_inner();
            emit(json, &listed, || {
                let mut text = String::from("out:\n");
                listed
                    .outgoing
                    .iter()
                    .for_each(|t| text.push_str(&render::transfer(t)));
                text.push_str("in:\n");
                listed
                    .incoming
                    .iter()
                    .for_each(|t| text.push_str(&render::transfer(t)));
                text
            })
        }
    }
}

pub(crate) async fn audit_command(action: AuditAction, json: bool) -> Result<()> {
    match action {
        AuditAction::Who {
            gateway,
            id,
            reason,
        } => {
            let answer = gateway
                .gateway()
                .await?
                .subject_access(pb::SubjectAccessRequest { id, reason })
                .await?
                .into_inner();
            emit(json, &answer, || render::accesses(&answer))
        }
        AuditAction::Export { config } => {
            let config = contactpoint_node::NodeConfig::load(Some(&config))?;
            let client = node_database(&config).await?;
            let export =
                contactpoint_node::audit::AuditExport::load(&client, &config.authority_code)
                    .await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export.write_lines(&mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        AuditAction::Verify {
            config,
            export,
            audit_key_id,
            witness,
            witness_cert,
        } => {
            let (export, trusted) = match (config, export) {
                (Some(config), _) => {
                    let config = contactpoint_node::NodeConfig::load(Some(&config))?;
                    let client = node_database(&config).await?;
                    let trusted = contactpoint_node::audit::public_key_of(&config.audit_key)
                        .map_err(anyhow::Error::msg)?;
                    if !json {
                        println!(
                            "trusting audit key {}",
                            contactpoint_proto::audit::hex(&contactpoint_mtls::key_id(&trusted))
                        );
                    }
                    let export = contactpoint_node::audit::AuditExport::load(
                        &client,
                        &config.authority_code,
                    )
                    .await?;
                    (export, trusted)
                }
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let export = contactpoint_node::audit::AuditExport::read_lines(&text)
                        .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
                    let id = audit_key_id.unwrap_or_default();
                    let id_bytes = contactpoint_proto::audit::unhex(&id)
                        .with_context(|| format!("--audit-key-id {id:?} is not hex"))?;
                    let trusted = export
                        .key_with_id(&id_bytes)
                        .map(<[u8]>::to_vec)
                        .with_context(|| {
                            format!("the export's audit key history holds no key with id {id}: nothing in it can be trusted")
                        })?;
                    (export, trusted)
                }
                (None, None) => bail!("give --config or --export"),
            };
            let mut report = export.verify(&trusted);
            let authority_code = export.authority_code;
            if let (Some(file), Some(cert)) = (witness, witness_cert) {
                let witnesses = std::fs::read_to_string(&file)?
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(contactpoint_proto::audit::Witness::from_line)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                let gateway_key = contactpoint_mtls::public_key(&cert)?;
                contactpoint_node::audit::check_witnesses(
                    &mut report,
                    &authority_code,
                    &witnesses,
                    &gateway_key,
                );
            }
            let summary = serde_json::json!({
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "countersigned": report.witnessed,
                "problems": report.problems,
            });
            emit(json, &summary, || {
                let mut text = format!(
                    "{} audit entries, {} signed checkpoints, {} countersigned by the gateway\n",
                    report.entries, report.checkpoints, report.witnessed
                );
                if report.is_intact() {
                    text.push_str("the audit log is intact\n");
                }
                for problem in &report.problems {
                    text.push_str(&format!("BROKEN: {problem}\n"));
                }
                text
            })?;
            if !report.is_intact() {
                bail!("the audit log of {authority_code} is broken");
            }
            Ok(())
        }
    }
}

/// A connection to a node's database, as its configuration names it.
async fn node_database(config: &contactpoint_node::NodeConfig) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the node's database")?;
    tokio::spawn(connection);
    Ok(client)
}
