//! The demo's seeding and walk-through (`cpctl seed`, `cpctl federation-demo`):
//! fictional children recorded at a node (namesakes in two regions, to show a
//! search telling them apart), then one federation's lookups, searches,
//! refusals and a transfer, printed as they happen.
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{Datelike, Utc};
use contactpoint_proto::sample;
use contactpoint_proto::v1::{self as pb, gateway_client::GatewayClient};
use tonic::transport::Channel;

use crate::args::NodeArgs;
use crate::{render, wire_date};

/// The date of birth the sample namesakes share: about four months ago.
fn shared_birthday() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(120)
}

/// Noah James Bennett's date of birth: 5 January, twelve years ago, which a
/// caller may give as 1 May.
fn bennett_birthday() -> chrono::NaiveDate {
    let year = Utc::now().year() - 12;
    chrono::NaiveDate::from_ymd_opt(year, 1, 5).unwrap_or_default()
}

/// Records one of three sets of fictional children at a node. Sets 0 and 1
/// each hold an Amelia Hartley born on the same day: namesakes in two regions.
pub(crate) async fn seed(node: &NodeArgs, set: usize) -> Result<()> {
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
                wire_date(bennett_birthday()),
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
pub(crate) async fn federation_demo(endpoint: &str, pki: &Path) -> Result<()> {
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

    let misheard = bennett_birthday();
    let misheard =
        chrono::NaiveDate::from_ymd_opt(misheard.year(), misheard.day(), misheard.month())
            .unwrap_or(misheard);
    println!(
        "\n== As the NSPCC, a caller's details as heard: \"Noah Bennet\", born {misheard} (tolerant search, every region)"
    );
    let tolerant = pb::SearchRecordsRequest {
        surname: "Bennet".into(),
        forename: "Noah".into(),
        date_of_birth: Some(wire_date(misheard)),
        mode: pb::MatchMode::Tolerant as i32,
        reason: "a caller to the helpline worried about a child".into(),
        ..Default::default()
    };
    // The blind index learns of a record when the gateway next reads its
    // node's feed: seconds after the seeding, at most.
    let mut found = nspcc.search_records(tolerant.clone()).await?.into_inner();
    for _ in 0..30 {
        if !found.matches.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        found = nspcc.search_records(tolerant.clone()).await?.into_inner();
    }
    print!("{}", render::matches(&found.matches));
    println!(
        "  {} of the federation's authorities asked (the blind index held the search's keys there)",
        found.authorities_asked
    );

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
            ..Default::default()
        })
        .await?
        .into_inner();
    print!("{}", render::transfer(&transfer));
    let mut management = GatewayClient::new(as_client("e06000001-management").channel().await?);
    println!("\n== Hartlepool's management team consents to the record leaving");
    management
        .consent_transfer(pb::GetTransferRequest {
            transfer_id: transfer.transfer_id.clone(),
        })
        .await?;
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

/// Polls a transfer until it ends or awaits a consent (or 30 seconds pass).
pub(crate) async fn wait_for_transfer(
    client: &mut GatewayClient<Channel>,
    transfer_id: &str,
) -> Result<pb::Transfer> {
    let ended = [
        pb::TransferState::Completed as i32,
        pb::TransferState::Cancelled as i32,
        pb::TransferState::AwaitingConsent as i32,
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
