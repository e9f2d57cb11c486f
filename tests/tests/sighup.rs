//! SIGHUP makes a running server read its CRLs (and policy) again: a
//! certificate revoked after start is refused from the next handshake.
//! In a test binary of its own, because a signal reaches the whole process.
use contactpoint_mtls::devca::{Subject, Validity};
use contactpoint_tests::*;

fn search() -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        surname: "Hart".into(),
        date_of_birth: Some(date(today() - chrono::Duration::days(2000))),
        reason: "checking".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sighup_picks_up_a_revoked_certificate() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let gateway_db = TestDb::create().await?;
    let (leaver, serial) = pki.issue_with_serial(
        "leaver",
        Subject {
            organisation: "NSPCC",
            unit: None,
            common_name: "Leaving today",
            server_names: &[],
            validity: Validity::Current,
        },
    )?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.tls.crls = vec![pki.revocation_list(&[])?];
    let gateway = TestGateway::start(config).await?;
    let works = |files: contactpoint_mtls::TlsFiles| {
        let address = gateway.address;
        async move {
            let Ok(channel) = connect(address, &files).await else {
                return false;
            };
            pb::gateway_client::GatewayClient::new(channel)
                .search_records(search())
                .await
                .is_ok()
        }
    };
    assert!(works(leaver.clone()).await, "not revoked yet");

    // The CA revokes the certificate; the operator sends SIGHUP.
    pki.revocation_list(&[serial])?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()?;
    assert!(status.success());
    eventually("the revocation to take effect", || {
        let leaver = leaver.clone();
        let works = &works;
        async move { Ok((!works(leaver).await).then_some(())) }
    })
    .await?;
    assert!(
        works(pki.client_files("NSPCC", "Staying")?).await,
        "others are still served"
    );
    Ok(())
}
