//! A transfer needs the sending authority's consent (issue 19, item 2):
//! the destination, an operator or the sender's own practitioners may ask,
//! but nothing moves until the sending authority's management team
//! consents; node certificates may not ask at all. The sending node checks
//! the consent against its own policy before the record leaves it, so a
//! gateway's journal alone cannot move a record. Every refusal is audited.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::metadata::BinaryMetadataValue;
use tonic::Code;

const A: &str = "E06000001";
const B: &str = "E06000002";

async fn child(f: &Federation, given: &str) -> anyhow::Result<pb::ChildRecord> {
    Ok(f.staff(0)
        .await?
        .create_record(sample::child_request(
            given,
            "Lowe",
            date(today() - Duration::days(400)),
            "TS24 8AH",
        ))
        .await?
        .into_inner())
}

fn transfer(id: &str) -> pb::StartTransferRequest {
    pb::StartTransferRequest {
        id: id.to_owned(),
        to_authority: B.into(),
        ..Default::default()
    }
}

/// How many of the gateway's audit entries are `method` calls with
/// `outcome` from `organisation`'s unit `unit` (`""`: none).
async fn gateway_audited(
    f: &Federation,
    method: &str,
    outcome: &str,
    organisation: &str,
    unit: &str,
) -> anyhow::Result<i64> {
    Ok(f.gateway_db
        .connect()
        .await?
        .query_one(
            "SELECT count(*) FROM gateway_audit WHERE method = $1 AND outcome = $2
             AND caller_organisation = $3 AND coalesce(caller_unit, '') = $4",
            &[&method, &outcome, &organisation, &unit],
        )
        .await?
        .get(0))
}

/// The destination asks and waits: the destination's management, the
/// sender's social worker and an operator cannot consent, a node
/// certificate cannot ask, an operator's request waits too; the sender's
/// management consents and the record moves, its node recording who
/// consented. Refusing is cancelling, after which no consent revives it.
#[tokio::test]
async fn a_transfer_waits_for_the_sending_authoritys_consent() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let record = child(&f, "Mia").await?;
    let client = |files: contactpoint_mtls::TlsFiles| {
        let gateway = &f.gateway;
        async move { gateway.client(&files).await }
    };

    let mut b_staff = client(f.pki.client_files(B, "Social worker")?).await?;
    let asked = b_staff
        .start_transfer(transfer(&record.id))
        .await?
        .into_inner();
    assert_eq!(asked.state, pb::TransferState::AwaitingConsent as i32);
    assert_eq!(asked.requested_by, format!("{B}//Social worker"));
    // However often it is driven, nothing moves before consent.
    let worker = f.transfer_worker().await?;
    assert_eq!(
        worker.advance(&asked.transfer_id).await?,
        "awaiting_consent"
    );
    assert_eq!(f.node_dbs[1].count("child_record").await?, 0);
    assert_eq!(f.live_copies(&record.id).await?, vec![A.to_owned()]);

    let consent = pb::GetTransferRequest {
        transfer_id: asked.transfer_id.clone(),
    };
    let refusers = [
        (f.pki.management_files(B, "Data manager")?, B, "management"),
        (f.pki.client_files(A, "Social worker")?, A, ""),
        (
            f.pki.client_files("ContactPoint operations", "On call")?,
            "ContactPoint operations",
            "",
        ),
    ];
    for (files, organisation, unit) in refusers {
        let status = client(files)
            .await?
            .consent_transfer(consent.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("may not consent"),
            "{}",
            status.message()
        );
        assert_eq!(
            gateway_audited(
                &f,
                "ConsentTransfer",
                "permission_denied",
                organisation,
                unit
            )
            .await?,
            1,
            "{organisation}'s refused consent is audited"
        );
    }
    assert_eq!(
        f.transfer_state(&asked.transfer_id).await?,
        "awaiting_consent"
    );

    // A node certificate may not even ask.
    let other = child(&f, "Ted").await?;
    let status = client(f.pki.node_files(A)?)
        .await?
        .start_transfer(transfer(&other.id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        gateway_audited(&f, "StartTransfer", "permission_denied", A, "node").await?,
        1
    );
    // An operator's request waits for the sender like anyone's.
    let mut operator = client(f.pki.client_files("ContactPoint operations", "On call")?).await?;
    let by_operator = operator
        .start_transfer(transfer(&other.id))
        .await?
        .into_inner();
    assert_eq!(by_operator.state, pb::TransferState::AwaitingConsent as i32);

    // The sending authority's management team consents: the record moves,
    // and A's node records whose consent let it leave.
    let mut a_management = client(f.pki.management_files(A, "Data manager")?).await?;
    let consented = a_management
        .consent_transfer(consent.clone())
        .await?
        .into_inner();
    assert_eq!(
        consented.consented_by,
        format!("{A}/management/Data manager")
    );
    assert!(!consented.consented_at.is_empty());
    f.wait_for_transfer(&asked.transfer_id, "completed").await?;
    assert_eq!(f.live_copies(&record.id).await?, vec![B.to_owned()]);
    let reasons: Vec<String> = f.node_dbs[0]
        .connect()
        .await?
        .query(
            "SELECT reason FROM audit_event WHERE method IN ('ExportRecord', 'HandOverRecord')
             AND $1 = ANY(record_ids) AND outcome = 'ok' AND reason IS NOT NULL",
            &[&record.id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        reasons.len() >= 2
            && reasons
                .iter()
                .all(|r| r == &format!("consented to by {A}/management/Data manager")),
        "{reasons:?}"
    );
    // A repeat is answered as it stands.
    let again = a_management.consent_transfer(consent).await?.into_inner();
    assert_eq!(again.consented_at, consented.consented_at);

    // Refusing is cancelling; a cancelled request cannot be consented to.
    a_management
        .cancel_transfer(pb::GetTransferRequest {
            transfer_id: by_operator.transfer_id.clone(),
        })
        .await?;
    f.wait_for_transfer(&by_operator.transfer_id, "cancelled")
        .await?;
    let status = a_management
        .consent_transfer(pb::GetTransferRequest {
            transfer_id: by_operator.transfer_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(f.live_copies(&other.id).await?, vec![A.to_owned()]);
    Ok(())
}

/// Why the journal says a transfer waits.
async fn waiting_reason(f: &Federation, transfer_id: &str) -> anyhow::Result<String> {
    let reason: Option<String> = f
        .gateway_db
        .connect()
        .await?
        .query_one(
            "SELECT waiting_reason FROM transfer WHERE transfer_id = $1",
            &[&transfer_id],
        )
        .await?
        .get(0);
    Ok(reason.unwrap_or_default())
}

/// A request to the sending node with the gateway's certificate, on a
/// social worker's behalf, naming `consent` (none: `None`).
fn step<T>(message: T, consent: Option<&[u8]>) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-contactpoint-role", "gateway".parse()?);
    metadata.insert_bin(
        "x-contactpoint-caller-bin",
        BinaryMetadataValue::from_bytes(format!("{A}\n\nSocial worker").as_bytes()),
    );
    if let Some(consent) = consent {
        metadata.insert_bin(
            "x-contactpoint-consent-bin",
            BinaryMetadataValue::from_bytes(consent),
        );
    }
    Ok(request)
}

/// The gateway's word is not enough: a journal naming no consent, or a
/// consent the sending node's policy does not give, moves nothing (the
/// transfer goes back to wait for a consent, saying why); called
/// directly with the gateway's own certificate, the node exports the
/// record's content and hands it over only under its management's consent.
#[tokio::test]
async fn the_sending_node_refuses_a_record_leaving_without_its_consent() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let worker = f.transfer_worker().await?;

    let unconsented = child(&f, "Ivy").await?;
    let journaled = f.journal_transfer_with(&unconsented.id, A, B, None).await?;
    assert_eq!(f.transfer_state(&journaled).await?, "awaiting_consent");
    // A journal edited to say the transfer may go ahead, naming no consent.
    f.gateway_db
        .connect()
        .await?
        .execute(
            "UPDATE transfer SET state = 'requested' WHERE transfer_id = $1",
            &[&journaled],
        )
        .await?;
    // The worker takes no step: the transfer goes back to wait for a
    // consent, saying why.
    assert_eq!(worker.advance(&journaled).await?, "awaiting_consent");
    let waiting = waiting_reason(&f, &journaled).await?;
    assert!(waiting.contains("consent"), "{waiting}");

    let forged = child(&f, "Max").await?;
    let journaled = f
        .journal_transfer_with(&forged.id, A, B, Some(&format!("{A}//Social worker")))
        .await?;
    // The sending node refuses the consent named; the transfer waits for
    // one it will accept, its journaled consent cleared.
    assert_eq!(worker.advance(&journaled).await?, "awaiting_consent");
    let waiting = waiting_reason(&f, &journaled).await?;
    assert!(waiting.contains("not this authority's"), "{waiting}");
    let consented_by: Option<String> = f
        .gateway_db
        .connect()
        .await?
        .query_one(
            "SELECT consented_by FROM transfer WHERE transfer_id = $1",
            &[&journaled],
        )
        .await?
        .get(0);
    assert_eq!(consented_by, None);
    assert_eq!(
        f.node_dbs[1].count("child_record").await?,
        0,
        "nothing staged at B"
    );

    let mut node = f.nodes[0].client(&f.gateway.config.tls).await?;
    let hand_over = |consent: Option<&[u8]>| {
        step(
            pb::HandOverRequest {
                transfer_id: journaled.clone(),
                id: forged.id.clone(),
                to: Some(pb::ResponsibleAuthority {
                    code: B.into(),
                    name: "B".into(),
                }),
            },
            consent,
        )
    };
    let b_management = format!("{B}\nmanagement\nData manager");
    for consent in [None, Some(b_management.as_bytes())] {
        let status = node
            .hand_over_record(hand_over(consent)?)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let export = |consent: Option<&[u8]>| {
        step(
            pb::ExportRecordRequest {
                id: forged.id.clone(),
            },
            consent,
        )
    };
    let bare = node.export_record(export(None)?).await?.into_inner();
    assert!(bare.snapshot.is_empty(), "no content without a consent");
    assert_eq!(f.live_copies(&forged.id).await?, vec![A.to_owned()]);
    let refused: i64 = f.node_dbs[0]
        .connect()
        .await?
        .query_one(
            "SELECT count(*) FROM audit_event WHERE outcome = 'permission_denied'
             AND method IN ('ExportRecord', 'HandOverRecord') AND $1 = ANY(record_ids)",
            &[&forged.id],
        )
        .await?
        .get(0);
    assert_eq!(
        refused, 3,
        "the worker's export and both hand-overs, audited"
    );

    // Under A's management team's consent, the node lets the record go.
    let a_management = format!("{A}\nmanagement\nData manager");
    let full = node
        .export_record(export(Some(a_management.as_bytes()))?)
        .await?
        .into_inner();
    assert!(!full.snapshot.is_empty());
    node.hand_over_record(hand_over(Some(a_management.as_bytes()))?)
        .await?;
    Ok(())
}
