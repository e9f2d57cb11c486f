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
    Ok(std::process::Command::new(workspace_binary("cpctl")?)
        .args(args)
        .env(
            "CPCTL_ENDPOINT",
            format!("https://localhost:{}", endpoint.port()),
        )
        .env("CPCTL_CA", &files.ca)
        .env("CPCTL_CERT", &files.cert)
        .env("CPCTL_KEY", &files.key)
        .output()?)
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

    // A's social worker moves Ava to B.
    let moved = expect(
        &cpctl(
            &staff,
            gateway,
            &["transfer", "start", &ids[0], "--to", B, "--wait"],
        )?,
        0,
    );
    assert!(moved.contains("completed"), "{moved}");
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
            "authority_code = \"{A}\"\nauthority_name = \"Hartlepool\"\ndatabase_url = \"{}\"\npolicy = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            node.database_url,
            node.policy.display(),
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
    Ok(())
}
