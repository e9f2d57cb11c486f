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
        AuditAction::Verify {
            config,
            witness,
            witness_cert,
        } => {
            let config = contactpoint_node::NodeConfig::load(Some(&config))?;
            let (client, connection) =
                tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls)
                    .await
                    .context("cannot connect to the node's database")?;
            tokio::spawn(connection);
            let trusted = contactpoint_node::audit::public_key_of(&config.audit_key)
                .map_err(anyhow::Error::msg)?;
            let mut report = contactpoint_node::audit::verify(&client, &trusted).await?;
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
                    &config.authority_code,
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
                bail!("the audit log of {} is broken", config.authority_code);
            }
            Ok(())
        }
    }
}
