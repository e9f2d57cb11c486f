//! `cpctl` end to end against a running federation: whoami, load with a bad
//! row, search, show, transfer, audit; its output and exit codes.
use std::path::Path;
use std::process::Output;

use contactpoint_mtls::TlsFiles;
use contactpoint_tests::*;

const A: &str = "E06000001";
const B: &str = "E06000002";

/// Runs cpctl as the holder of `files` against `endpoint`.
fn cpctl(
    files: &TlsFiles,
    endpoint: std::net::SocketAddr,
    args: &[&str],
) -> anyhow::Result<Output> {
    Ok(cpctl_command(files, endpoint)?.args(args).output()?)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn expect(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_end_to_end() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let gateway = f.gateway.address;
    let nspcc = f.pki.client_files("NSPCC", "Helpline")?;
    let staff = f.pki.client_files(A, "Social worker")?;

    let me = expect(&cpctl(&nspcc, gateway, &["whoami"])?, 0);
    assert!(
        me.contains("a national partner (Schedule 2 para 3)") && me.contains("access    met"),
        "{me}"
    );

    // Load three rows at A's node; one has a date that is not a date.
    let born = today() - chrono::Duration::days(900);
    let csv = f.pki.dir.path().join("children.csv");
    std::fs::write(
        &csv,
        format!(
            "given_names,family_name,gender,date_of_birth,address,town,postcode\n\
             Ava,Cliff,female,{born},1 High Street,Hartlepool,TS24 8AH\n\
             Ben,Cliff,male,31/02/2020,2 High Street,Hartlepool,TS24 8AH\n\
             Cara,Cliff,not_specified,{born},3 High Street,Hartlepool,TS24 8AH\n"
        ),
    )?;
    let loaded = expect(
        &cpctl(&staff, f.nodes[0].address, &["load", csv.to_str().unwrap()])?,
        8,
    );
    assert!(loaded.contains("loaded 2 rows, rejected 1"), "{loaded}");
    let rejected = std::fs::read_to_string(csv.with_extension("rejected.csv"))?;
    let bad_row = rejected.lines().nth(1).unwrap_or_default();
    assert!(
        bad_row.starts_with("3,")
            && bad_row.contains("date_of_birth")
            && bad_row.contains("Ben,Cliff"),
        "{rejected}"
    );
    // Written as the answers came: order them by line.
    let mut rows: Vec<(usize, String)> = std::fs::read_to_string(csv.with_extension("loaded.csv"))?
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(','))
        .map(|(line, id)| (line.parse().unwrap_or_default(), id.to_owned()))
        .collect();
    rows.sort();
    let ids: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        f.wait_until_routed(id, A).await?;
    }

    // Create from a JSON file, then update it from another, at A's node.
    let request = sample::child_request("Dana", "Cliff", date(born), "TS24 8AH");
    let create_file = f.pki.dir.path().join("dana.json");
    std::fs::write(&create_file, serde_json::to_string(&request)?)?;
    let created: serde_json::Value = serde_json::from_str(&expect(
        &cpctl(
            &staff,
            f.nodes[0].address,
            &["create", create_file.to_str().unwrap(), "--json"],
        )?,
        0,
    ))?;
    let dana = created["id"].as_str().unwrap_or_default().to_owned();
    let mut details = request.details.clone().unwrap_or_default();
    details.name = Some(pb::PersonName {
        given_names: "Dana Mae".into(),
        family_name: "Cliff".into(),
    });
    let update_file = f.pki.dir.path().join("dana-details.json");
    std::fs::write(&update_file, serde_json::to_string(&details)?)?;
    let update_file = update_file.to_str().unwrap();
    let update_at_version_1 = ["update", &dana, "--version", "1", update_file];
    let updated = expect(&cpctl(&staff, f.nodes[0].address, &update_at_version_1)?, 0);
    assert!(updated.contains("Dana Mae Cliff"), "{updated}");
    // The same version again is stale: exit 6.
    expect(&cpctl(&staff, f.nodes[0].address, &update_at_version_1)?, 6);
    f.wait_until_routed(&dana, A).await?;

    // Search through the gateway: a table, and JSON.
    let dob = born.to_string();
    let search = [
        "search",
        "--surname",
        "cliff",
        "--dob",
        &dob,
        "--reason",
        "helpline call",
    ];
    let table = expect(&cpctl(&nspcc, gateway, &search)?, 0);
    assert!(ids.iter().all(|id| table.contains(id.as_str())), "{table}");
    let mut as_json = search.to_vec();
    as_json.push("--json");
    let found: serde_json::Value =
        serde_json::from_str(&expect(&cpctl(&nspcc, gateway, &as_json)?, 0))?;
    assert_eq!(
        found["matches"].as_array().map(Vec::len),
        Some(3),
        "Ava, Cara and Dana"
    );

    // Show: JSON in the protobuf mapping; NotFound and PermissionDenied codes.
    let shown: serde_json::Value = serde_json::from_str(&expect(
        &cpctl(
            &nspcc,
            gateway,
            &["show", &ids[0], "--reason", "helpline call", "--json"],
        )?,
        0,
    ))?;
    assert_eq!(shown["name"]["givenNames"], "Ava");
    let unknown = contactpoint_proto::identifier::RecordId::mint(A, 99_999).to_string();
    expect(
        &cpctl(&nspcc, gateway, &["show", &unknown, "--reason", "x"])?,
        4,
    );
    let operator = f.pki.client_files("ContactPoint operations", "On call")?;
    let refused = cpctl(&operator, gateway, &search)?;
    expect(&refused, 5);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("PermissionDenied"));
    expect(
        &cpctl(&nspcc, gateway, &["show", "not-an-id", "--reason", "x"])?,
        3,
    );

    // A's social worker asks to move Ava to B; it waits for A's management
    // team, who consent.
    let asked: serde_json::Value = serde_json::from_str(&expect(
        &cpctl(
            &staff,
            gateway,
            &["transfer", "start", &ids[0], "--to", B, "--wait", "--json"],
        )?,
        0,
    ))?;
    assert!(
        asked["state"]
            .as_str()
            .unwrap_or_default()
            .contains("AWAITING_CONSENT"),
        "{asked}"
    );
    let transfer_id = asked["transferId"].as_str().unwrap_or_default();
    let a_management = f.pki.management_files(A, "Data manager")?;
    let moved = expect(
        &cpctl(
            &a_management,
            gateway,
            &["transfer", "consent", transfer_id, "--wait"],
        )?,
        0,
    );
    assert!(
        moved.contains("completed") && moved.contains("consented to by"),
        "{moved}"
    );
    let listed = expect(
        &cpctl(&staff, gateway, &["transfer", "list", "--authority", A])?,
        0,
    );
    assert!(listed.contains(&ids[0]), "{listed}");

    // B's management team: who has looked at Ava.
    let b_management = f.pki.management_files(B, "Data manager")?;
    let who = expect(
        &cpctl(
            &b_management,
            gateway,
            &[
                "audit",
                "who",
                &ids[0],
                "--reason",
                "subject access request",
            ],
        )?,
        0,
    );
    assert!(
        who.contains("NSPCC / Helpline") && who.contains(A) && who.contains(B),
        "{who}"
    );

    // The development CA: a user of a Schedule 3 role, with the policy
    // entries to add, then revoked into a CRL.
    let ca_dir = f.pki.dir.path().join("cli-pki");
    let ca = ca_dir.to_str().unwrap();
    expect(&cpctl(&staff, gateway, &["pki", "init", "--dir", ca])?, 0);
    let user = expect(
        &cpctl(
            &staff,
            gateway,
            &[
                "pki",
                "user",
                "--dir",
                ca,
                "--organisation",
                "Cleveland Police",
                "--name",
                "PC 99",
                "--schedule3",
                "3",
                "--authority",
                A,
            ],
        )?,
        0,
    );
    assert!(
        user.contains("schedule3 = \"3\"")
            && user.contains("common_name = \"PC 99\"")
            && user.contains("[[conditions]]"),
        "{user}"
    );
    assert!(ca_dir.join("user-cleveland-police-pc-99.pem").exists());
    expect(
        &cpctl(
            &staff,
            gateway,
            &["pki", "revoke", "--dir", ca, "user-cleveland-police-pc-99"],
        )?,
        0,
    );
    assert!(std::fs::read_to_string(ca_dir.join("crl.pem"))?.contains("BEGIN X509 CRL"));
    expect(
        &cpctl(&staff, gateway, &["pki", "revoke", "--dir", ca, "nobody"])?,
        1,
    );

    // A's audit log verifies.
    let node = &f.nodes[0].config;
    let config = f.pki.dir.path().join("node-a.toml");
    std::fs::write(
        &config,
        format!(
            "authority_code = \"{A}\"\nauthority_name = \"Hartlepool\"\ndatabase_url = \"{}\"\npolicy = \"{}\"\naudit_key = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            node.database_url,
            node.policy.display(),
            node.audit_key.display(),
            node.tls.ca.display(),
            node.tls.cert.display(),
            node.tls.key.display()
        ),
    )?;
    let verified = expect(
        &cpctl(
            &staff,
            gateway,
            &["audit", "verify", "--config", config.to_str().unwrap()],
        )?,
        0,
    );
    assert!(verified.contains("the audit log is intact"), "{verified}");
    assert!(Path::new(&config).exists());

    // Exported, the audit verifies offline, trusting the audit key's id;
    // an entry edited in the export, or an id the history lacks, does not.
    let exported = expect(
        &cpctl(
            &staff,
            gateway,
            &["audit", "export", "--config", config.to_str().unwrap()],
        )?,
        0,
    );
    let export = f.pki.dir.path().join("audit-a.jsonl");
    std::fs::write(&export, &exported)?;
    let public =
        contactpoint_node::audit::public_key_of(&node.audit_key).map_err(anyhow::Error::msg)?;
    let id = contactpoint_proto::audit::hex(&contactpoint_mtls::key_id(&public));
    assert!(
        verified.contains(&format!("trusting audit key {id}")),
        "{verified}"
    );
    let offline = |file: &Path, id: &str| {
        cpctl(
            &staff,
            gateway,
            &[
                "audit",
                "verify",
                "--export",
                file.to_str().unwrap(),
                "--audit-key-id",
                id,
            ],
        )
    };
    let verified = expect(&offline(&export, &id)?, 0);
    assert!(verified.contains("the audit log is intact"), "{verified}");
    let edited = f.pki.dir.path().join("audit-a-edited.jsonl");
    let entry = exported
        .lines()
        .position(|line| {
            line.contains("\"kind\":\"entry\"") && line.contains("\"name\":\"Social worker\"")
        })
        .expect("an entry by the social worker");
    let edited_text: Vec<String> = exported
        .lines()
        .enumerate()
        .map(|(index, line)| {
            if index == entry {
                line.replace("\"name\":\"Social worker\"", "\"name\":\"Someone else\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&edited, edited_text.join("\n"))?;
    let broken = offline(&edited, &id)?;
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("BROKEN: entry") && stdout.contains("was altered"),
        "{stdout}"
    );
    let stranger = offline(&export, &"ab".repeat(32))?;
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("holds no key with id"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );

    Ok(())
}

/// The rows of a CSV file, header first.
fn csv_rows(path: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        rows.push(record?.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_file_holds_the_rejected_rows_and_loads_once_corrected() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let staff = f.pki.client_files(A, "Social worker")?;
    let born = today() - chrono::Duration::days(900);
    let header = "given_names,family_name,gender,date_of_birth,address,town,postcode";
    let row = |name: &str, gender: &str, dob: &str, address: &str| {
        format!("{name},Quill,{gender},{dob},{address},Hartlepool,TS24 8AH")
    };
    // Bad rows first, in the middle (its address quoted over two lines) and
    // last; a good row before the middle one has a quoted newline too.
    let good = born.to_string();
    let rows = [
        row("Ada", "female", "2017-02-29", "1 Quay"),
        row("Bo", "male", &good, "2 Quay"),
        row("Cy", "male", &good, "\"Flat 3\n3 Quay\""),
        row("Di", "female", &good, "4 Quay"),
        row("Ed", "sometimes", &good, "\"Flat 5\n5 Quay\""),
        row("Flo", "female", &good, "6 Quay"),
        row("Gus", "male", "31/12/2020", "7 Quay"),
    ];
    let csv = f.pki.dir.path().join("quills.csv");
    std::fs::write(&csv, format!("{header}\n{}\n", rows.join("\n")))?;
    let out = expect(
        &cpctl(&staff, f.node.address, &["load", csv.to_str().unwrap()])?,
        8,
    );
    assert!(
        out.contains("loaded 4 rows, rejected 3"),
        "{out}{}",
        std::fs::read_to_string(csv.with_extension("rejected.csv")).unwrap_or_default()
    );

    // Exactly the three bad rows, each with its own line and its own fields.
    let rejected_path = csv.with_extension("rejected.csv");
    let rejected = csv_rows(&rejected_path)?;
    let expected_header: Vec<&str> = ["line", "reason"]
        .into_iter()
        .chain(header.split(','))
        .collect();
    assert_eq!(rejected[0], expected_header);
    let mut bad: Vec<(usize, &str, &str, &str)> = rejected[1..]
        .iter()
        .map(|r| (r[0].parse().unwrap_or(0), &*r[2], &*r[4], &*r[6]))
        .collect();
    bad.sort();
    let expected = [
        (2, "Ada", "female", "1 Quay"),
        (7, "Ed", "sometimes", "Flat 5\n5 Quay"),
        (10, "Gus", "male", "7 Quay"),
    ];
    assert_eq!(bad, expected, "{rejected:?}");
    assert!(
        rejected[1..]
            .iter()
            .all(|r| r.len() == 9 && !r[5].is_empty() && r[1].contains(':')),
        "each row whole, with a reason naming its field: {rejected:?}"
    );
    assert_eq!(f.db.count("child_record").await?, 4);

    // Corrected where it stands, the rejected file loads as it is.
    let fixed: String = std::fs::read_to_string(&rejected_path)?
        .replace("2017-02-29", &good)
        .replace("sometimes", "male")
        .replace("31/12/2020", &good);
    let fixed_path = f.pki.dir.path().join("quills-fixed.csv");
    std::fs::write(&fixed_path, fixed)?;
    let out = expect(
        &cpctl(
            &staff,
            f.node.address,
            &["load", fixed_path.to_str().unwrap()],
        )?,
        0,
    );
    assert!(out.contains("loaded 3 rows, rejected 0"), "{out}");
    assert_eq!(f.db.count("child_record").await?, rows.len() as i64);
    Ok(())
}
