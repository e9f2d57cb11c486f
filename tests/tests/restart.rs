//! A node that restarts serves the same data and keeps minting new identifiers.
use contactpoint_tests::*;

#[tokio::test]
async fn a_restarted_node_serves_the_same_records() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let pki = TestPki::new()?;
    let practitioner = pki.client_files("E06000001", "Practitioner")?;
    let node = TestNode::start(&db, &pki, "E06000001").await?;
    let mut client = node.client(&practitioner).await?;
    let created = client
        .create_record(sample::every_paragraph(date(
            today() - chrono::Duration::days(30),
        )))
        .await?
        .into_inner();
    node.stop().await?;

    let node = TestNode::start(&db, &pki, "E06000001").await?;
    let mut client = node.client(&practitioner).await?;
    let fetched = client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(fetched, created);

    let next = client
        .create_record(sample::child_request(
            "New",
            "Child",
            date(today() - chrono::Duration::days(10)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    assert_ne!(
        next.id, created.id,
        "identifiers are not reused after a restart"
    );
    node.stop().await?;
    Ok(())
}

/// Health says SERVING and reflection lists the node's service.
#[tokio::test]
async fn health_and_reflection_are_served() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let channel = connect(
        f.node.address,
        &f.pki.client_files("E06000001", "Operator")?,
    )
    .await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "contactpoint.v1.AuthorityNode".into(),
        })
        .await?
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let response = responses.message().await?.expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"contactpoint.v1.AuthorityNode"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    Ok(())
}
