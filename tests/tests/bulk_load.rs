//! LoadRecords: many records in one stream, written in batches with COPY,
//! each batch one transaction and one audit entry; a refused record is named
//! with why and does not stop the others; shielding holds for duplicates.
use contactpoint_tests::*;

#[tokio::test]
async fn a_load_writes_good_records_in_batches_and_names_the_bad() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = today() - chrono::Duration::days(3000);
    let mut management = f
        .node
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?;
    let shielded = f
        .client
        .create_record(sample::child_request("Mia", "Hart", date(born), "TS24 8AH"))
        .await?
        .into_inner();
    management
        .shield_record(pb::ShieldRecordRequest {
            id: shielded.id.clone(),
            shielded: true,
            reason: "risk of being found".into(),
        })
        .await?;

    let total = 2500u32;
    let requests: Vec<pb::CreateRecordRequest> = (0..total)
        .map(|i| match i {
            1 => sample::every_paragraph(date(today() - chrono::Duration::days(100))),
            7 => sample::child_request("Nameless", "", date(born), "TS24 8AH"),
            1500 => sample::child_request(
                "Future",
                "Child",
                date(today() + chrono::Duration::days(3)),
                "TS24 8AH",
            ),
            2000 => sample::child_request("Mia", "Hart", date(born), "TS25 1AA"),
            _ => sample::child_request(&format!("Child {i}"), "Loaded", date(born), "TS24 8AH"),
        })
        .collect();
    let mut answers = f
        .client
        .load_records(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let (mut loaded, mut rejected, mut batches) = (Vec::new(), Vec::new(), 0);
    while let Some(batch) = answers.message().await? {
        batches += 1;
        loaded.extend(batch.loaded);
        rejected.extend(batch.rejected);
    }
    assert_eq!(batches, 3, "1000, 1000 and 500 records");
    assert_eq!(loaded.len(), 2498, "{:?}", rejected);
    let refused: Vec<(u32, bool)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.starts_with("details.")))
        .collect();
    assert_eq!(refused, [(7, true), (1500, true)], "{rejected:?}");
    let mut ids: Vec<&str> = loaded.iter().map(|l| l.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2498, "every identifier new");
    assert_eq!(f.db.count("child_record").await?, 2499);
    assert_eq!(
        f.db.count("routing_outbox").await?,
        2499,
        "each announced for routing"
    );

    // The loaded records are whole records; the duplicate of the shielded
    // child is shielded.
    let read = |id: &str| pb::GetRecordRequest {
        id: id.into(),
        reason: "checking the load".into(),
        ..Default::default()
    };
    let first = loaded.iter().find(|l| l.index == 0).expect("loaded");
    let record = f.client.get_record(read(&first.id)).await?.into_inner();
    assert_eq!(
        record.name.as_ref().map(|n| n.given_names.as_str()),
        Some("Child 0")
    );
    let twin = loaded.iter().find(|l| l.index == 2000).expect("loaded");
    assert!(
        f.client
            .get_record(read(&twin.id))
            .await?
            .into_inner()
            .shielded
    );

    // A loaded record with every paragraph reads back as the same record
    // created one at a time: its lists, entries and their provenance.
    let whole = loaded.iter().find(|l| l.index == 1).expect("loaded");
    let created = f
        .client
        .create_record(sample::every_paragraph(date(
            today() - chrono::Duration::days(100),
        )))
        .await?
        .into_inner();
    let mut loaded_whole = management.get_record(read(&whole.id)).await?.into_inner();
    let mut created_whole = management.get_record(read(&created.id)).await?.into_inner();
    assert!(!loaded_whole.services.is_empty() && !loaded_whole.former_names.is_empty());
    for record in [&mut loaded_whole, &mut created_whole] {
        record.id.clear();
        let provenance = |p: &mut Option<pb::Provenance>| {
            let p = p.as_mut().expect("every entry has its provenance");
            assert!(!p.supplied_by.is_empty() && !p.supplied_at.is_empty());
            p.supplied_at.clear();
        };
        for e in &mut record.contacts {
            (e.entry_id, ()) = (0, provenance(&mut e.provenance));
        }
        for e in &mut record.education {
            (e.entry_id, ()) = (0, provenance(&mut e.provenance));
        }
        for e in &mut record.services {
            (e.entry_id, ()) = (0, provenance(&mut e.provenance));
        }
        for e in &mut record.caf_assessments {
            (e.entry_id, ()) = (0, provenance(&mut e.provenance));
        }
        for e in &mut record.lead_professionals {
            (e.entry_id, ()) = (0, provenance(&mut e.provenance));
        }
    }
    assert_eq!(loaded_whole, created_whole);

    // One audit entry per batch, naming its records; the chain verifies.
    let db = f.db.connect().await?;
    let audited: Vec<i64> = db
        .query(
            "SELECT cardinality(record_ids)::bigint FROM audit_event WHERE method = 'LoadRecords' ORDER BY event_id",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(audited, [999, 999, 500]);
    let key = contactpoint_node::audit::public_key_of(&f.node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    let report = contactpoint_node::audit::verify(&db, &key).await?;
    assert!(report.is_intact(), "{:?}", report.problems);

    // Only those who maintain records load them.
    let mut police = f
        .node
        .client(&f.pki.client_files("Cleveland Police", "PC 1")?)
        .await?;
    let status = police
        .load_records(tokio_stream::iter(vec![sample::child_request(
            "A",
            "B",
            date(born),
            "TS24 8AH",
        )]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(f.db.count("child_record").await?, 2500);
    Ok(())
}
