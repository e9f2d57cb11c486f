//! Shielding holds through duplicates and merges (RULES.md: in 2009
//! duplicate records of shielded children appeared unshielded).
use contactpoint_tests::*;
use tonic::Code;

fn read(id: &str) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        id: id.into(),
        reason: "checking for duplicates".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_duplicate_of_a_shielded_child_is_shielded_and_merges_keep_shielding(
) -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let mut staff = f.client.clone();
    let mut management = f
        .node
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?;
    let born = date(today() - chrono::Duration::days(2500));
    let shielded = staff
        .create_record(sample::child_request("Mia Rose", "Hart", born, "TS24 8AH"))
        .await?
        .into_inner();
    management
        .shield_record(pb::ShieldRecordRequest {
            id: shielded.id.clone(),
            shielded: true,
            reason: "the child's location must not reach a violent parent".into(),
        })
        .await?;

    // Someone records the same child again, elsewhere in the authority.
    let duplicate = staff
        .create_record(sample::child_request("Mia", "Hart", born, "TS25 1AA"))
        .await?
        .into_inner();
    assert!(
        duplicate.shielded,
        "a likely duplicate of a shielded child is shielded at once"
    );
    assert!(duplicate.whereabouts.is_none());
    let found = staff
        .search_records(pb::SearchRecordsRequest {
            surname: "Hart".into(),
            postcode: "TS25 1AA".into(),
            reason: "checking for duplicates".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(
        found.matches.is_empty(),
        "its postcode finds nothing: {:?}",
        found.matches
    );
    let told = management
        .list_notifications(pb::ListNotificationsRequest::default())
        .await?
        .into_inner()
        .notifications;
    let flagged: Vec<_> = told
        .iter()
        .filter(|n| n.kind == pb::NotificationKind::PossibleDuplicateOfShielded as i32)
        .map(|n| (n.record_id.as_str(), n.related_record_id.as_str()))
        .collect();
    assert_eq!(flagged, [(duplicate.id.as_str(), shielded.id.as_str())]);
    // A different child is not caught by it.
    let other = staff
        .create_record(sample::child_request("Noah", "Hart", born, "TS25 1AA"))
        .await?
        .into_inner();
    assert!(!other.shielded);

    // The duplicate's school joins the kept record when they are merged.
    staff
        .add_entry(pb::AddEntryRequest {
            id: duplicate.id.clone(),
            entry: Some(pb::add_entry_request::Entry::Education(
                pb::EducationEntry {
                    setting: pb::education_entry::Setting::EducationalInstitution as i32,
                    provider_name: "Rift House Primary".into(),
                    started_on: Some(date(today() - chrono::Duration::days(30))),
                    ..Default::default()
                },
            )),
        })
        .await?;
    let merge = |keep: &str, duplicate: &str, reason: &str| pb::MergeRecordsRequest {
        id: keep.into(),
        duplicate_id: duplicate.into(),
        reason: reason.into(),
    };
    let refused = staff
        .merge_records(merge(&shielded.id, &duplicate.id, "same child"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "only the management team merges"
    );
    let refused = management
        .merge_records(merge(&shielded.id, &duplicate.id, ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let kept = management
        .merge_records(merge(
            &shielded.id,
            &duplicate.id,
            "same child: same birth registration",
        ))
        .await?
        .into_inner();
    assert!(kept.shielded);
    assert!(kept
        .education
        .iter()
        .any(|e| e.provider_name == "Rift House Primary"));
    assert!(kept
        .former_names
        .iter()
        .any(|f| f.name.as_ref().is_some_and(|n| n.given_names == "Mia")));
    let gone = staff.get_record(read(&duplicate.id)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        gone.message()
            .contains(&format!("merged into record {}", shielded.id)),
        "{}",
        gone.message()
    );
    let seen = staff.get_record(read(&shielded.id)).await?.into_inner();
    assert!(
        seen.shielded && seen.education.is_empty(),
        "still shielded from users"
    );

    // Shielding a record shields the likely duplicates already there.
    let earlier = staff
        .create_record(sample::child_request("Ivy", "Moss", born, "TS24 8AH"))
        .await?
        .into_inner();
    let twin = staff
        .create_record(sample::child_request("Ivy", "Moss", born, "TS26 9HU"))
        .await?
        .into_inner();
    assert!(!twin.shielded);
    management
        .shield_record(pb::ShieldRecordRequest {
            id: earlier.id.clone(),
            shielded: true,
            reason: "risk from a relative".into(),
        })
        .await?;
    assert!(
        staff
            .get_record(read(&twin.id))
            .await?
            .into_inner()
            .shielded
    );
    // Archived records are not merged.
    let archived = archived_young_person(&mut staff, "Ivy", "Moss").await?;
    let refused = management
        .merge_records(merge(&earlier.id, &archived.id, "same person"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "{}",
        refused.message()
    );

    // Merging a shielded duplicate into an unshielded record shields it.
    let plain = staff
        .create_record(sample::child_request("Leo", "Stone", born, "TS24 8AH"))
        .await?
        .into_inner();
    let shielded_twin = staff
        .create_record(sample::child_request("Leo", "Stone", born, "TS26 9HU"))
        .await?
        .into_inner();
    management
        .shield_record(pb::ShieldRecordRequest {
            id: shielded_twin.id.clone(),
            shielded: true,
            reason: "risk from an adult at the address".into(),
        })
        .await?;
    management
        .merge_records(merge(&plain.id, &shielded_twin.id, "same child"))
        .await?;
    let merged = staff.get_record(read(&plain.id)).await?.into_inner();
    assert!(merged.shielded, "shielding is kept through the merge");
    assert!(merged.whereabouts.is_none());
    Ok(())
}
