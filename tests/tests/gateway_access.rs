//! Who may come through the gateway, and what each role may do there and at
//! the nodes.
use chrono::Duration;
use contactpoint_mtls::devca::{Subject, Validity};
use contactpoint_tests::*;
use tonic::Code;

fn search() -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        reason: "checking the test child\'s record".into(),
        surname: "Hart".into(),
        date_of_birth: Some(date(today() - Duration::days(2000))),
        ..Default::default()
    }
}

/// A valid certificate for an identity the policy does not name is refused
/// with PermissionDenied, and no node is called.
#[tokio::test]
async fn an_unknown_identity_is_refused() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let stranger = federation
        .pki
        .client_files("Unlisted Charity", "Volunteer")?;
    let status = federation
        .gateway
        .client(&stranger)
        .await?
        .search_records(search())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("names no role"),
        "{}",
        status.message()
    );
    assert_eq!(federation.node_dbs[0].count("audit_event").await?, 0);
    Ok(())
}

/// A role without the right is refused, citing why, and the node is never called.
#[tokio::test]
async fn a_role_without_the_right_is_refused_before_any_node() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002"]).await?;
    let operator = federation
        .pki
        .client_files("ContactPoint operations", "On call")?;
    let mut client = federation.gateway.client(&operator).await?;
    let status = client.search_records(search()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("an operator may not search"),
        "{}",
        status.message()
    );
    let status = client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: contactpoint_node::identifier::RecordId::mint("E06000001", 1).to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    for db in &federation.node_dbs {
        assert_eq!(db.count("audit_event").await?, 0, "no node was called");
    }
    let audited: i64 = federation.gateway_db.connect().await?.query_one("SELECT count(*) FROM gateway_audit WHERE outcome = 'permission_denied' AND role = 'operator'", &[]).await?.get(0);
    assert_eq!(audited, 2, "the gateway audits refusals");
    Ok(())
}

/// Expired certificates, certificates from another CA, and revoked ones are
/// refused at the gateway's handshake.
#[tokio::test]
async fn expired_foreign_and_revoked_certificates_are_refused() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let gateway_db = TestDb::create().await?;
    let (revoked, serial) = pki.issue_with_serial(
        "revoked",
        Subject {
            organisation: "NSPCC",
            unit: None,
            common_name: "Left the charity",
            server_names: &[],
            validity: Validity::Current,
        },
    )?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.tls.crls = vec![pki.revocation_list(&[serial])?];
    let gateway = TestGateway::start(config).await?;

    let works = |files: contactpoint_mtls::TlsFiles| {
        let address = gateway.address;
        async move {
            let Ok(channel) = connect(address, &files).await else {
                return false;
            };
            let mut client = pb::gateway_client::GatewayClient::new(channel);
            // A search across no nodes succeeds for anyone the gateway lets in.
            client.search_records(search()).await.is_ok()
        }
    };
    assert!(
        works(pki.client_files("NSPCC", "Current staff")?).await,
        "a valid NSPCC certificate is served"
    );
    assert!(
        !works(pki.client_files_with("NSPCC", "Former staff", Validity::Expired)?).await,
        "expired"
    );
    assert!(!works(revoked).await, "revoked");
    let other = TestPki::new()?;
    let foreign = other.client_files("NSPCC", "Impostor")?;
    assert!(
        !works(contactpoint_mtls::TlsFiles {
            ca: pki.policy_path().with_file_name("ca.pem"),
            ..foreign
        })
        .await,
        "another CA"
    );
    let audited: i64 = gateway_db
        .connect()
        .await?
        .query_one("SELECT count(*) FROM gateway_audit", &[])
        .await?
        .get(0);
    assert_eq!(audited, 1, "only the valid caller reached a handler");
    Ok(())
}

/// The policy is reloaded without a restart: a partner added to the file is
/// served once the gateway has read it.
#[tokio::test]
async fn the_policy_reloads_without_a_restart() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let barnardos = federation
        .pki
        .client_files("Barnardo's", "Project worker")?;
    let mut client = federation.gateway.client(&barnardos).await?;
    assert_eq!(
        client.search_records(search()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let identity = "\n[[identity]]\norganisation = \"Barnardo's\"\nrole = \"national_partner\"\nschedule2 = 2\n";
    federation.pki.write_policy(identity)?;
    // A role alone is not enough: a person needs their access conditions.
    let refusal = eventually("the reloaded policy naming the role", || {
        let mut client = client.clone();
        async move {
            let status = client.search_records(search()).await.unwrap_err();
            Ok(Some(status).filter(|status| status.message().contains("access conditions")))
        }
    })
    .await?;
    assert_eq!(refusal.code(), Code::PermissionDenied);
    assert!(
        refusal.message().contains("no completed training")
            && refusal.message().contains("no signed user agreement"),
        "{}",
        refusal.message()
    );
    let day = contactpoint_tests::today();
    federation.pki.write_policy(&format!(
        "{identity}\n[[conditions]]\norganisation = \"Barnardo's\"\ncommon_name = \"Project worker\"\ntraining_completed_on = {day}\ncriminal_record_check_on = {day}\nuser_agreement_signed_on = {day}\n"
    ))?;
    eventually("the reloaded policy", || {
        let mut client = client.clone();
        async move { Ok(client.search_records(search()).await.ok()) }
    })
    .await?;
    Ok(())
}

/// One partner over its rate is refused with ResourceExhausted while another
/// caller is still served.
#[tokio::test]
async fn one_caller_over_its_limit_does_not_starve_another() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let gateway_db = TestDb::create().await?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.limits.per_caller_per_second = 0.01;
    config.limits.per_caller_burst = 3.0;
    let gateway = TestGateway::start(config).await?;
    let mut nspcc = gateway.client(&pki.client_files("NSPCC", "Busy")?).await?;
    let mut refused = None;
    for _ in 0..5 {
        if let Err(status) = nspcc.search_records(search()).await {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the fourth call in a burst of three is refused");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("rate limit"),
        "{}",
        status.message()
    );
    let mut police = gateway
        .client(&pki.client_files("Cleveland Police", "PC 1")?)
        .await?;
    police.search_records(search()).await?;
    Ok(())
}

/// The node enforces the same rules itself: a police officer may read but not
/// write at a node, and forwarding headers from anyone but the gateway are
/// not believed.
#[tokio::test]
async fn nodes_enforce_roles_and_believe_forwarding_only_from_the_gateway() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let police = f.pki.client_files("Cleveland Police", "PC 1")?;
    let mut client = f.node.client(&police).await?;
    let status = client
        .create_record(sample::child_request(
            "Ann",
            "Lee",
            date(today() - Duration::days(900)),
            "TS24 8AH",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("Schedule 3 para 3"),
        "{}",
        status.message()
    );
    client.search_records(search()).await?;

    // The police certificate claims to act for Hartlepool's own staff: ignored.
    let request = forwarded(
        sample::child_request(
            "Ann",
            "Lee",
            date(today() - Duration::days(900)),
            "TS24 8AH",
        ),
        b"E06000001\n\nSocial worker",
        "schedule3:1(2)(a)@E06000001",
    )?;
    assert_eq!(
        client.create_record(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(f.db.count("child_record").await?, 0);
    Ok(())
}

/// A call forwarded by the gateway, for `caller` in the role `role` asserts.
fn forwarded<T>(message: T, caller: &[u8], role: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-contactpoint-role", role.parse()?);
    request.metadata_mut().insert_bin(
        "x-contactpoint-caller-bin",
        tonic::metadata::BinaryMetadataValue::from_bytes(caller),
    );
    Ok(request)
}

/// A gateway that lies about a caller's role (here a client holding the
/// gateway's own certificate and key) is refused by every node, which
/// derives the role from its own policy and audits the dispute; the same
/// call with the role the policy gives is answered.
#[tokio::test(flavor = "multi_thread")]
async fn every_node_refuses_a_gateway_that_lies_about_a_role() -> anyhow::Result<()> {
    let codes = ["E06000001", "E06000002"];
    let f = Federation::start(&codes).await?;
    let gateway_files = f.gateway.config.tls.clone();
    for (index, code) in codes.iter().enumerate() {
        let mut node = f.nodes[index].client(&gateway_files).await?;
        // The NSPCC's helpline, asserted to be the authority's management team.
        let create = forwarded(
            sample::child_request(
                "Ann",
                "Lee",
                date(today() - Duration::days(900)),
                "TS24 8AH",
            ),
            b"NSPCC\n\nHelpline",
            &format!("management@{code}"),
        )?;
        let status = node.create_record(create).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("this node's policy gives")
                && status.message().contains("Schedule 2 para 3"),
            "{}",
            status.message()
        );
        // A stranger to the policy, asserted to be a practitioner.
        let stranger = forwarded(
            search(),
            b"Acme Ltd\n\nNobody",
            &format!("schedule3:2@{code}"),
        )?;
        let status = node.search_records(stranger).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("gives none"),
            "{}",
            status.message()
        );

        let db = f.node_dbs[index].connect().await?;
        let disputed: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_event WHERE outcome = 'role_disputed'",
                &[],
            )
            .await?
            .get(0);
        assert_eq!(disputed, 2, "each refusal audited as disputed at {code}");
        assert_eq!(f.node_dbs[index].count("child_record").await?, 0);

        // Told truthfully, the same caller is answered.
        let honest = forwarded(search(), b"NSPCC\n\nHelpline", "schedule2:3")?;
        node.search_records(honest).await?;
    }
    Ok(())
}
