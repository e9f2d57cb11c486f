//! Who has looked at a child's record: the responsible authority is told when
//! another organisation views it (as CP-IS does), and answers a subject
//! access request across every authority the record has passed through.
use contactpoint_tests::*;
use tonic::Code;

const A: &str = "E06000001";
const B: &str = "E06000002";

fn read(id: &str, reason: &str) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        id: id.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn views_are_notified_and_a_subject_access_request_spans_authorities() -> anyhow::Result<()> {
    let mut f = Federation::start(&[A, B]).await?;
    let pki = &f.pki;
    let born = date(today() - chrono::Duration::days(100));
    let record = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(born))
        .await?
        .into_inner();
    f.wait_until_routed(&record.id, A).await?;

    // The NSPCC looks through the gateway; A's own social worker directly.
    let mut nspcc = f
        .gateway
        .client(&pki.client_files("NSPCC", "Helpline")?)
        .await?;
    nspcc.get_record(read(&record.id, "helpline call")).await?;
    f.staff(0)
        .await?
        .get_record(read(&record.id, "planning a visit"))
        .await?;
    let mut a_management = f.nodes[0]
        .client(&pki.management_files(A, "Data manager")?)
        .await?;
    let told = a_management
        .list_notifications(pb::ListNotificationsRequest::default())
        .await?
        .into_inner()
        .notifications;
    assert_eq!(
        told.len(),
        1,
        "only the other organisation's view: {told:?}"
    );
    assert_eq!(
        told[0].kind,
        pb::NotificationKind::ViewedByOtherOrganisation as i32
    );
    assert_eq!(told[0].organisation, "NSPCC");
    assert_eq!(told[0].reason, "helpline call");
    assert_eq!(told[0].record_id, record.id);
    // Only the authority's staff read what it is told.
    let refused = nspcc_at_node(&f, 0)
        .await?
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A body contributes; who wrote is shown only to management teams.
    f.gateway
        .client(&pki.client_files("Headland Medical Practice", "Practice system")?)
        .await?
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: None,
            entry: Some(pb::contribute_request::Entry::Service(
                pb::ServiceInvolvement {
                    kind: pb::ServiceKind::SpecialistOrTargeted as i32,
                    provider_name: "Headland Medical Practice".into(),
                    sensitive: true,
                    sensitive_ground: pb::SensitiveGround::Consent as i32,
                    started_on: Some(date(today())),
                    archive_after_years: 2,
                    ..Default::default()
                },
            )),
        })
        .await?;

    // The child moves to B; the police look there.
    let mut a_staff = f
        .gateway
        .client(&pki.client_files(A, "Social worker")?)
        .await?;
    let transfer = a_staff
        .start_transfer(pb::StartTransferRequest {
            id: record.id.clone(),
            to_authority: B.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    f.consent_transfer(&transfer.transfer_id, A).await?;
    f.wait_for_transfer(&transfer.transfer_id, "completed")
        .await?;
    let mut police = f
        .gateway
        .client(&pki.client_files("Cleveland Police", "PC 1234")?)
        .await?;
    police
        .get_record(read(&record.id, "missing child report"))
        .await?;

    // B's management team answers a subject access request across A and B.
    let b_management_files = pki.management_files(B, "Data manager")?;
    let mut b_management = f.gateway.client(&b_management_files).await?;
    let sar = pb::SubjectAccessRequest {
        id: record.id.clone(),
        reason: "subject access request from the child's mother".into(),
    };
    let answer = b_management.subject_access(sar.clone()).await?.into_inner();
    assert_eq!(answer.authorities, [A, B]);
    let reads: Vec<(&str, &str, &str)> = answer
        .accesses
        .iter()
        .filter(|a| a.method == "GetRecord")
        .map(|a| {
            (
                a.authority_code.as_str(),
                a.organisation.as_str(),
                a.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            (B, "Cleveland Police", "missing child report"),
            (A, A, "planning a visit"),
            (A, "NSPCC", "helpline call"),
        ],
        "newest first, from both authorities"
    );
    assert!(answer
        .accesses
        .iter()
        .any(|a| a.authority_code == A && a.method == "CreateRecord"));
    assert!(answer.accesses.windows(2).all(|w| w[0].at >= w[1].at));
    let writer = |answer: &pb::SubjectAccessResponse| {
        answer
            .accesses
            .iter()
            .find(|a| a.method == "Contribute")
            .map(|a| a.organisation.clone())
    };
    assert_eq!(
        writer(&answer).as_deref(),
        Some("Headland Medical Practice")
    );
    // B's social worker may answer too, but not see who supplied information
    // (it may be a sensitive service's provider: regulation 6(a)).
    let b_staff_answer = f
        .gateway
        .client(&pki.client_files(B, "Social worker")?)
        .await?
        .subject_access(sar.clone())
        .await?
        .into_inner();
    assert!(
        writer(&b_staff_answer).is_some_and(|who| who.starts_with("withheld")),
        "{:?}",
        writer(&b_staff_answer)
    );
    // Operators review audits but do not answer subject access requests.
    let status = f
        .gateway
        .client(&pki.client_files("ContactPoint operations", "On call")?)
        .await?
        .subject_access(sar.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // B was told of the police's view.
    let mut b_at_node = f.nodes[1].client(&b_management_files).await?;
    let told = b_at_node
        .list_notifications(pb::ListNotificationsRequest::default())
        .await?
        .into_inner()
        .notifications;
    assert!(
        told.iter().any(|n| n.organisation == "Cleveland Police"),
        "{told:?}"
    );
    // Provenance travelled with the record.
    let whole = b_at_node
        .get_record(read(&record.id, "answering the request"))
        .await?
        .into_inner();
    assert_eq!(
        whole.contacts[0]
            .provenance
            .as_ref()
            .map(|p| p.supplied_by.as_str()),
        Some(A)
    );

    // A is no longer responsible; the NSPCC never was.
    for files in [
        pki.management_files(A, "Data manager")?,
        pki.client_files("NSPCC", "Helpline")?,
    ] {
        let status = f
            .gateway
            .client(&files)
            .await?
            .subject_access(sar.clone())
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{}",
            status.message()
        );
    }
    // Without a reason: refused naming it.
    let status = b_management
        .subject_access(pb::SubjectAccessRequest {
            id: record.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // With A's node down the answer would be incomplete: Unavailable naming A.
    f.nodes.remove(0).stop().await?;
    let status = b_management.subject_access(sar).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains(&format!("Authority {A} ({A})")),
        "{}",
        status.message()
    );
    Ok(())
}

async fn nspcc_at_node(
    f: &Federation,
    index: usize,
) -> anyhow::Result<pb::authority_node_client::AuthorityNodeClient<tonic::transport::Channel>> {
    f.nodes[index]
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await
}
