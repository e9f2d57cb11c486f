//! Revocation as the README documents it, on the example federation's own
//! configuration (deploy/examples, as scripts/demo runs it): a CA made by
//! `cpctl dev-ca`, a node and the gateway started from the example files,
//! then `cpctl pki revoke` and SIGHUP; both servers refuse the revoked
//! certificate at the handshake, and still serve everyone else.
use std::path::Path;
use std::process::{Child, Command, Stdio};

use contactpoint_mtls::TlsFiles;
use contactpoint_tests::*;

/// A server binary run from `dir` with an example configuration, only the
/// database and the addresses from the environment.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(
    dir: &Path,
    binary: &str,
    config: &str,
    prefix: &str,
    env: &[(&str, String)],
) -> anyhow::Result<Server> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    std::fs::copy(examples.join(config), dir.join(config))?;
    let mut command = Command::new(workspace_binary(binary)?);
    command
        .current_dir(dir)
        .args(["--config", config])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (field, value) in env {
        command.env(format!("{prefix}{field}"), value);
    }
    Ok(Server(command.spawn()?))
}

fn files(pki: &Path, stem: &str) -> TlsFiles {
    TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{stem}.pem")),
        key: pki.join(format!("{stem}.key")),
        crls: vec![],
    }
}

/// Whether `files` can open a connection to `address` and be answered.
async fn answered(address: std::net::SocketAddr, files: &TlsFiles) -> bool {
    let Ok(channel) = connect(address, files).await else {
        return false;
    };
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_certificate_is_refused_by_the_example_federation_after_sighup(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = dir.path().join("pki");
    let cpctl = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(workspace_binary("cpctl")?)
            .current_dir(dir.path())
            .args(args)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "cpctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    cpctl(&[
        "dev-ca",
        "--dir",
        "pki",
        "--gateway",
        "--node",
        "E06000001",
        "--client",
        "NSPCC/Helpline practitioner",
        "--client",
        "Cleveland Police/PC 1234",
    ])?;
    std::fs::write(
        dir.path().join("policy.toml"),
        "[access]\nconditions_required = false\n\n\
         [[identity]]\norganisation = \"NSPCC\"\nrole = \"national_partner\"\nschedule2 = 3\n\n\
         [[identity]]\norganisation = \"Cleveland Police\"\nrole = \"practitioner\"\nschedule3 = \"3\"\nauthority = \"E06000001\"\n\n\
         [[identity]]\norganisation = \"ContactPoint gateway\"\nrole = \"gateway\"\n",
    )?;

    let node_db = TestDb::create().await?;
    let gateway_db = TestDb::create().await?;
    let (node_address, gateway_address) = (free_port()?, free_port()?);
    let node = start(
        dir.path(),
        "contactpoint-node",
        "node-E06000001.toml",
        "CONTACTPOINT_NODE_",
        &[
            ("DATABASE_URL", node_db.app_url.clone()),
            ("SCHEMA_OWNER_URL", node_db.url.clone()),
            ("LISTEN", node_address.to_string()),
            ("METRICS_LISTEN", free_port()?.to_string()),
        ],
    )?;
    let gateway = start(
        dir.path(),
        "contactpoint-gateway",
        "gateway.toml",
        "CONTACTPOINT_GATEWAY_",
        &[
            ("DATABASE_URL", gateway_db.url.clone()),
            ("LISTEN", gateway_address.to_string()),
            ("METRICS_LISTEN", free_port()?.to_string()),
        ],
    )?;
    let (nspcc, police) = (
        files(&pki, "client-nspcc"),
        files(&pki, "client-cleveland-police"),
    );
    for address in [node_address, gateway_address] {
        eventually("the example servers to serve", || {
            let nspcc = nspcc.clone();
            async move { Ok(answered(address, &nspcc).await.then_some(())) }
        })
        .await?;
    }

    // The documented steps: revoke, then SIGHUP.
    let said = cpctl(&["pki", "revoke", "--dir", "pki", "client-nspcc"])?;
    assert!(said.contains("SIGHUP"), "{said}");
    for server in [&node, &gateway] {
        let hangup = Command::new("kill")
            .args(["-HUP", &server.0.id().to_string()])
            .status()?;
        assert!(hangup.success());
    }
    for address in [node_address, gateway_address] {
        eventually("the revoked certificate to be refused", || {
            let nspcc = nspcc.clone();
            async move { Ok((!answered(address, &nspcc).await).then_some(())) }
        })
        .await?;
        assert!(answered(address, &police).await, "others are still served");
    }
    Ok(())
}
