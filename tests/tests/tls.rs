//! Mutual TLS at the node's listener: no certificate, or one the federation's
//! CA did not issue, or an expired one, is refused at the handshake.
use contactpoint_mtls::devca::Validity;
use contactpoint_mtls::TlsFiles;
use contactpoint_tests::*;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

async fn try_create(channel: Channel) -> Result<pb::ChildRecord, tonic::Status> {
    let mut client = pb::authority_node_client::AuthorityNodeClient::new(channel);
    let request = sample::child_request(
        "Tia",
        "Gray",
        date(today() - chrono::Duration::days(900)),
        "TS24 8AH",
    );
    client
        .create_record(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Connects with the given TLS settings; the refusal may come at connect or
/// at the first call, depending on when the server's alert arrives.
async fn attempt(f: &Fixture, tls: ClientTlsConfig) -> anyhow::Result<bool> {
    let endpoint = Channel::from_shared(format!("https://localhost:{}", f.node.address.port()))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    Ok(match endpoint.connect().await {
        Err(_) => false,
        Ok(channel) => try_create(channel).await.is_ok(),
    })
}

fn trust_only(files: &TlsFiles) -> anyhow::Result<ClientTlsConfig> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&files.ca)?))
        .domain_name("localhost"))
}

/// A client that presents no certificate is refused, and nothing is written.
#[tokio::test]
async fn a_client_without_a_certificate_is_refused() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let files = f.pki.client_files("E06000001", "Someone")?;
    assert!(
        !attempt(&f, trust_only(&files)?).await?,
        "a client without a certificate got an answer"
    );
    assert_eq!(f.db.count("child_record").await?, 0);
    assert_eq!(
        f.db.count("audit_event").await?,
        0,
        "the call never reached a handler"
    );
    // The same CA with a certificate is served: the refusal was about the certificate.
    assert!(attempt(&f, contactpoint_mtls::client_tls(&files, "localhost")?).await?);
    Ok(())
}

/// A certificate from another CA is refused even though it is well formed.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let other = TestPki::new()?;
    let foreign = other.client_files("E06000001", "Impostor")?;
    // Trust the real CA for the server, but present the foreign CA's certificate.
    let ours = f.pki.client_files("E06000001", "Someone")?;
    let tls = contactpoint_mtls::client_tls(
        &TlsFiles {
            ca: ours.ca.clone(),
            ..foreign
        },
        "localhost",
    )?;
    assert!(
        !attempt(&f, tls).await?,
        "a foreign certificate got an answer"
    );
    assert_eq!(f.db.count("audit_event").await?, 0);
    Ok(())
}

/// An expired certificate from the right CA is refused.
#[tokio::test]
async fn an_expired_certificate_is_refused() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let expired = f
        .pki
        .client_files_with("E06000001", "Former employee", Validity::Expired)?;
    assert!(!attempt(&f, contactpoint_mtls::client_tls(&expired, "localhost")?).await?);
    assert_eq!(f.db.count("audit_event").await?, 0);
    Ok(())
}

/// A node whose certificate another CA issued is not trusted by the client:
/// verification runs both ways.
#[tokio::test]
async fn the_client_refuses_a_node_from_another_ca() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let other = TestPki::new()?;
    let files = other.client_files("E06000001", "Someone")?;
    assert!(!attempt(&f, contactpoint_mtls::client_tls(&files, "localhost")?).await?);
    Ok(())
}

/// A certificate whose subject names two organisations, two units or two
/// people is no identity (issue 19, item 6): which one the policy read and
/// which one an audit names could differ. The gateway and a node both
/// refuse it, UNAUTHENTICATED, saying what a subject must name, and write
/// nothing; the same person's certificate naming each once is answered.
#[tokio::test]
async fn a_subject_naming_an_attribute_twice_is_refused() -> anyhow::Result<()> {
    use contactpoint_mtls::devca::Repeated;
    let f = Federation::start(&["E06000001"]).await?;
    for repeated in [Repeated::Organisation, Repeated::Unit, Repeated::CommonName] {
        let files = f
            .pki
            .client_files_repeating("NSPCC", "Helpline", "Jo Smith", repeated)?;
        let search = pb::SearchRecordsRequest {
            reason: "helpline call".into(),
            surname: "Gray".into(),
            date_of_birth: Some(date(today() - chrono::Duration::days(900))),
            ..Default::default()
        };
        let at_gateway = f
            .gateway
            .client(&files)
            .await?
            .search_records(search.clone())
            .await
            .unwrap_err();
        let at_node = f.nodes[0]
            .client(&files)
            .await?
            .search_records(search)
            .await
            .unwrap_err();
        for status in [at_gateway, at_node] {
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{repeated:?}: {status:?}"
            );
            assert!(
                status.message().contains("exactly one organisation (O)"),
                "{}",
                status.message()
            );
        }
    }
    assert_eq!(f.node_audited(0, "SearchRecords").await?, 0);
    let once = f.pki.client_files("NSPCC", "Jo Smith")?;
    f.gateway
        .client(&once)
        .await?
        .search_records(pb::SearchRecordsRequest {
            reason: "helpline call".into(),
            surname: "Gray".into(),
            date_of_birth: Some(date(today() - chrono::Duration::days(900))),
            ..Default::default()
        })
        .await?;
    Ok(())
}
