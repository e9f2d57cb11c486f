//! Harness for the end-to-end tests: a fresh PostgreSQL database per test, a
//! development CA writing real certificates, and nodes served on real
//! loopback sockets with real mutual TLS. Nothing is mocked.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use contactpoint_mtls::devca::{DevCa, Subject, Validity};
use contactpoint_mtls::TlsFiles;
use contactpoint_node::{Clock, NodeConfig, SystemClock};
use contactpoint_proto::v1::authority_node_client::AuthorityNodeClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use contactpoint_proto::sample;
pub use contactpoint_proto::v1 as pb;

/// The server the tests make databases on: `CONTACTPOINT_TEST_PG_URL`
/// (set by `scripts/test`), or the local default.
pub fn admin_url() -> String {
    std::env::var("CONTACTPOINT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin_client() -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!(
                "cannot reach the test PostgreSQL at {} (run the tests with scripts/test)",
                admin_url()
            )
        })?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database of its own for one test, dropped when the value is.
pub struct TestDb {
    pub name: String,
    /// As the server's superuser, who owns the schema.
    pub url: String,
    /// As [`APPLICATION_ROLE`], which test nodes serve as.
    pub app_url: String,
}

/// The database role test nodes serve as: not the schema's owner, given by
/// the node only what it needs (migration V17), as a deployment would be.
pub const APPLICATION_ROLE: &str = "contactpoint_test_app";

impl TestDb {
    pub async fn create() -> Result<Self> {
        // Unique across runs (the time) and within this process (a counter:
        // two tests may read the same clock tick).
        static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "cp_test_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos(),
            CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let admin = admin_client().await?;
        admin
            .execute(&format!("CREATE DATABASE {name}"), &[])
            .await?;
        // One login role for every test database (roles are the cluster's);
        // tests running at once may both try to create it.
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {APPLICATION_ROLE} LOGIN;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ))
            .await?;
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => anyhow::bail!("CONTACTPOINT_TEST_PG_URL must end in /<database>"),
        };
        let app_url = Self::as_role(&url, APPLICATION_ROLE)?;
        Ok(Self { name, url, app_url })
    }

    /// `url` as another role, in key-value form (the server trusts loopback).
    fn as_role(url: &str, role: &str) -> Result<String> {
        let config: tokio_postgres::Config = url.parse()?;
        let mut parts = vec![format!("user={role}")];
        for host in config.get_hosts() {
            match host {
                tokio_postgres::config::Host::Tcp(name) => parts.push(format!("host={name}")),
                tokio_postgres::config::Host::Unix(path) => {
                    parts.push(format!("host={}", path.display()))
                }
            }
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(db) = config.get_dbname() {
            parts.push(format!("dbname={db}"));
        }
        Ok(parts.join(" "))
    }

    /// A direct connection, to look at what the node wrote.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Rows in a table (table names come from the test itself).
    pub async fn count(&self, table: &str) -> Result<i64> {
        Ok(self
            .connect()
            .await?
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = admin_client().await.ok()?;
                client
                    .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A development CA writing PEM files into a temporary folder.
pub struct TestPki {
    pub ca: DevCa,
    pub dir: tempfile::TempDir,
}

/// The authorities the test policy knows.
pub const TEST_AUTHORITIES: [&str; 4] = ["E06000001", "E06000002", "E06000003", "E06000004"];
/// The gateway's certificate organisation in tests.
pub const GATEWAY_ORGANISATION: &str = "ContactPoint gateway";

impl TestPki {
    /// A new CA, and the test access policy beside it (`policy.toml`).
    pub fn new() -> Result<Self> {
        let pki = Self {
            ca: DevCa::generate("test CA")?,
            dir: tempfile::tempdir()?,
        };
        // Written once: rewriting it with every certificate issued let a
        // server starting meanwhile read it empty.
        std::fs::write(pki.path("ca.pem"), pki.ca.cert_pem())?;
        pki.write_policy("")?;
        std::fs::write(
            pki.matching_key_path(),
            contactpoint_matching::blocking::MatchingKeys::generate("test-1")
                .map_err(anyhow::Error::msg)?,
        )?;
        Ok(pki)
    }

    /// The federation's matching key, which every test node and gateway
    /// holds (the blind index).
    pub fn matching_key_path(&self) -> PathBuf {
        self.path("matching.key")
    }

    /// The audit signing key of `code`'s node (`audit-<code>.key`), made
    /// the first time it is asked for; a node restarted keeps its key.
    pub fn audit_key(&self, code: &str) -> Result<PathBuf> {
        let path = self.path(&format!("audit-{code}.key"));
        if !path.exists() {
            std::fs::write(&path, contactpoint_mtls::devca::generate_key_pem()?)?;
        }
        Ok(path)
    }

    /// The access policy every test server reads.
    pub fn policy_path(&self) -> PathBuf {
        self.path("policy.toml")
    }

    /// Writes the test policy with `extra` entries appended: each test
    /// authority's own staff, management team (unit "management") and node, the NSPCC (Schedule 2 para 3), a police
    /// force (Schedule 3 para 3), an operator, and the gateway.
    pub fn write_policy(&self, extra: &str) -> Result<()> {
        self.write_policy_with(extra, 3)
    }

    /// As [`TestPki::write_policy`], with enhanced criminal record checks
    /// valid for `check_valid_years` (a test that moves its clock years on
    /// keeps its readers admitted). Every person's organisation has access
    /// conditions met today: training, a check a year old, a signed agreement.
    pub fn write_policy_with(&self, extra: &str, check_valid_years: u32) -> Result<()> {
        let year_ago = today() - chrono::Duration::days(365);
        let mut text = format!(
            "[access]\nconditions_required = true\ncriminal_record_check_valid_years = {check_valid_years}\nallow_organisation_wide_conditions = true\n"
        );
        for organisation in TEST_AUTHORITIES.iter().copied().chain([
            "NSPCC",
            "Cleveland Police",
            "NHS England",
            "Hartlepool Primary School",
        ]) {
            text.push_str(&format!(
                r#"
[[conditions]]
organisation = "{organisation}"
training_completed_on = {year_ago}
criminal_record_check_on = {year_ago}
user_agreement_signed_on = {year_ago}
"#
            ));
        }
        for code in TEST_AUTHORITIES {
            text.push_str(&format!(
                r#"
[[identity]]
organisation = "{code}"
role = "practitioner"
schedule3 = "1(2)(a)"
authority = "{code}"

[[identity]]
organisation = "{code}"
unit = "node"
role = "node"
authority = "{code}"

[[identity]]
organisation = "{code}"
unit = "management"
role = "management"
authority = "{code}"
"#
            ));
        }
        text.push_str(&format!(
            r#"
[[identity]]
organisation = "NSPCC"
role = "national_partner"
schedule2 = 3

[[identity]]
organisation = "Cleveland Police"
role = "practitioner"
schedule3 = "3"
authority = "E06000001"

[[identity]]
organisation = "ContactPoint operations"
role = "operator"

[[identity]]
organisation = "NHS England"
role = "practitioner"
schedule3 = "2"
authority = "E06000001"

[[identity]]
organisation = "Hartlepool Primary School"
role = "practitioner"
schedule3 = "9(1)(a)"
authority = "E06000001"

[[identity]]
organisation = "Hartlepool Academy"
role = "contributor"
schedule4 = 1
contributes = ["education"]

[[identity]]
organisation = "Headland Medical Practice"
role = "contributor"
schedule4 = 1
contributes = ["primary_medical", "targeted_service"]

[[identity]]
organisation = "{GATEWAY_ORGANISATION}"
role = "gateway"
{extra}"#
        ));
        // Write then rename, so a server watching the file never reads half of it.
        let staging = self.path("policy.toml.new");
        std::fs::write(&staging, text)?;
        std::fs::rename(staging, self.policy_path())?;
        Ok(())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a certificate and returns the files for a server or client using it.
    pub fn issue(&self, stem: &str, subject: Subject<'_>) -> Result<TlsFiles> {
        Ok(self.issue_with_serial(stem, subject)?.0)
    }

    /// As [`TestPki::issue`], also returning the serial number, for revocation.
    pub fn issue_with_serial(&self, stem: &str, subject: Subject<'_>) -> Result<(TlsFiles, u64)> {
        let issued = self.ca.issue(&subject)?;
        let serial = issued.serial;
        std::fs::write(self.path(&format!("{stem}.pem")), issued.cert_pem)?;
        std::fs::write(self.path(&format!("{stem}.key")), issued.key_pem)?;
        let files = TlsFiles {
            ca: self.path("ca.pem"),
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
            crls: vec![],
        };
        Ok((files, serial))
    }

    /// Writes a CRL revoking `serials` and returns its path.
    pub fn revocation_list(&self, serials: &[u64]) -> Result<PathBuf> {
        let path = self.path("revoked.crl.pem");
        std::fs::write(&path, self.ca.revocation_list(serials)?)?;
        Ok(path)
    }

    /// A node's server certificate, for localhost.
    pub fn node_files(&self, code: &str) -> Result<TlsFiles> {
        self.issue(
            &format!("node-{code}"),
            Subject {
                organisation: code,
                unit: Some("node"),
                common_name: "node",
                server_names: &["localhost", "127.0.0.1"],
                validity: Validity::Current,
            },
        )
    }

    /// A certificate for a member of an authority's management team.
    pub fn management_files(&self, code: &str, person: &str) -> Result<TlsFiles> {
        self.issue(
            &format!("management-{code}-{person}").replace(' ', "_"),
            Subject {
                organisation: code,
                unit: Some("management"),
                common_name: person,
                server_names: &[],
                validity: Validity::Current,
            },
        )
    }

    /// A client certificate for a person at an organisation.
    pub fn client_files(&self, organisation: &str, person: &str) -> Result<TlsFiles> {
        self.client_files_with(organisation, person, Validity::Current)
    }

    /// A client certificate for `organisation`'s `unit` and `person` whose
    /// subject names `repeated` twice, as no federation certificate should.
    pub fn client_files_repeating(
        &self,
        organisation: &str,
        unit: &str,
        person: &str,
        repeated: contactpoint_mtls::devca::Repeated,
    ) -> Result<TlsFiles> {
        let stem =
            format!("client-{organisation}-{unit}-{person}-twice-{repeated:?}").replace(' ', "_");
        let issued = self.ca.issue_repeating(
            &Subject {
                organisation,
                unit: Some(unit),
                common_name: person,
                server_names: &[],
                validity: Validity::Current,
            },
            repeated,
        )?;
        std::fs::write(self.path(&format!("{stem}.pem")), issued.cert_pem)?;
        std::fs::write(self.path(&format!("{stem}.key")), issued.key_pem)?;
        Ok(TlsFiles {
            ca: self.path("ca.pem"),
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
            crls: vec![],
        })
    }

    pub fn client_files_with(
        &self,
        organisation: &str,
        person: &str,
        validity: Validity,
    ) -> Result<TlsFiles> {
        let stem = format!("client-{organisation}-{person}-{validity:?}").replace(' ', "_");
        self.issue(
            &stem,
            Subject {
                organisation,
                unit: None,
                common_name: person,
                server_names: &[],
                validity,
            },
        )
    }
}

/// Records a participating young person (19, with consent) by `client`,
/// then withdraws their consent, which archives the record at once.
pub async fn archived_young_person(
    client: &mut AuthorityNodeClient<Channel>,
    given: &str,
    family: &str,
) -> Result<pb::ChildRecord> {
    let mut details = contactpoint_proto::sample::child(
        given,
        family,
        date(today() - chrono::Duration::days(365 * 19)),
        "TS24 8AH",
    );
    details.category = pb::PersonCategory::ParticipatingYoungPerson as i32;
    details.consent = Some(pb::YoungPersonConsent {
        given_on: Some(date(today())),
        recorded_by: "Leaving care team".into(),
    });
    let record = client
        .create_record(pb::CreateRecordRequest {
            details: Some(details),
            ..Default::default()
        })
        .await?
        .into_inner();
    client
        .withdraw_consent(pb::WithdrawConsentRequest {
            id: record.id.clone(),
            reason: "withdrew consent at the review".into(),
        })
        .await?;
    Ok(record)
}

/// Binds a server's metrics address here (port 0 in tests), writing the
/// address it got back into the configuration, so a test can scrape it.
async fn bind_metrics(address: &mut Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>> {
    let Some(wanted) = *address else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(wanted).await?;
    *address = Some(listener.local_addr()?);
    Ok(Some(listener))
}

/// A loopback address with a port the system just handed out and nobody
/// holds (for a server run as a separate process).
pub fn free_port() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The text a server's metrics endpoint serves (plain HTTP/1.1 GET).
pub async fn scrape(address: SocketAddr) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "metrics answered {head}");
    Ok(body.to_owned())
}

/// A binary of the workspace (`cpctl`, `contactpoint-gateway`...), which
/// `scripts/test` builds before the tests.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let binary = target.join("debug").join(name);
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build the binaries first (scripts/test does: cargo build --workspace --bins)",
        binary.display()
    );
    Ok(binary)
}

/// A node serving on a loopback port until stopped.
pub struct TestNode {
    pub address: SocketAddr,
    pub config: NodeConfig,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), contactpoint_node::StartError>>>,
}

impl TestNode {
    /// Starts a node for `code` on `db`, with the system clock.
    pub async fn start(db: &TestDb, pki: &TestPki, code: &str) -> Result<Self> {
        Self::start_with_clock(db, pki, code, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        db: &TestDb,
        pki: &TestPki,
        code: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Self::start_config(Self::config(db, pki, code)?, clock).await
    }

    /// The configuration [`TestNode::start`] serves with.
    pub fn config(db: &TestDb, pki: &TestPki, code: &str) -> Result<NodeConfig> {
        Ok(NodeConfig {
            authority_code: code.into(),
            authority_name: format!("Authority {code}"),
            listen: "127.0.0.1:0".parse()?,
            database_url: db.app_url.clone(),
            schema_owner_url: Some(db.url.clone()),
            pool_size: 8,
            pool_wait_ms: 5_000,
            statement_timeout_ms: 10_000,
            request_timeout_seconds: 30,
            concurrency_per_connection: 64,
            audit_checkpoint_seconds: 3600,
            notification_retention_days: 730,
            archive_interval_seconds: 3600,
            tls: pki.node_files(code)?,
            audit_key: pki.audit_key(code)?,
            audit_previous_key: None,
            policy: pki.policy_path(),
            metrics_listen: Some("127.0.0.1:0".parse()?),
            drain_seconds: 0,
            log_format: Default::default(),
            matching_key: Some(pki.matching_key_path()),
            limits: Default::default(),
        })
    }

    pub async fn start_config(mut config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let metrics = bind_metrics(&mut config.metrics_listen).await?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(contactpoint_node::serve_on(
            config.clone(),
            listener,
            metrics,
            clock,
            async {
                let _ = stopped.await;
            },
        ));
        let node = Self {
            address,
            config,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        node.wait_until_serving().await?;
        Ok(node)
    }

    /// Polls the health service until the node serves (or fails to start).
    async fn wait_until_serving(&self) -> Result<()> {
        // The node's own certificate is also a client certificate of the CA.
        let probe = &self.config.tls;
        for _ in 0..200 {
            if let Some(task) = &self.task {
                anyhow::ensure!(!task.is_finished(), "the node stopped while starting");
            }
            if let Ok(channel) = connect(self.address, probe).await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest {
                    service: "contactpoint.v1.AuthorityNode".into(),
                };
                if let Ok(response) = health.check(request).await {
                    if response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                    {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the node did not become healthy")
    }

    /// A client presenting `files`.
    pub async fn client(&self, files: &TlsFiles) -> Result<AuthorityNodeClient<Channel>> {
        Ok(AuthorityNodeClient::new(
            connect(self.address, files).await?,
        ))
    }

    /// Stops the node and waits for it to finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// `cpctl` as the holder of `files`, against the server at `address`.
pub fn cpctl_command(files: &TlsFiles, address: SocketAddr) -> Result<std::process::Command> {
    let mut command = std::process::Command::new(workspace_binary("cpctl")?);
    command
        .env(
            "CPCTL_ENDPOINT",
            format!("https://localhost:{}", address.port()),
        )
        .env("CPCTL_CA", &files.ca)
        .env("CPCTL_CERT", &files.cert)
        .env("CPCTL_KEY", &files.key);
    Ok(command)
}

/// A TLS channel to `address`, checking the server's certificate names localhost.
pub async fn connect(address: SocketAddr, files: &TlsFiles) -> Result<Channel> {
    let tls = contactpoint_mtls::client_tls(files, "localhost")?;
    Ok(
        Channel::from_shared(format!("https://localhost:{}", address.port()))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await?,
    )
}

/// A date for a request from a chrono date.
pub fn date(day: chrono::NaiveDate) -> pb::Date {
    use chrono::Datelike;
    sample::date(day.year(), day.month(), day.day())
}

/// Today on the system clock.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A started node with its database, CA and a practitioner's client: the
/// usual beginning of a test.
pub struct Fixture {
    pub db: TestDb,
    pub pki: TestPki,
    pub node: TestNode,
    pub client: AuthorityNodeClient<Channel>,
}

impl Fixture {
    pub async fn start() -> Result<Self> {
        Self::start_configured(|_| {}).await
    }

    /// As [`Fixture::start`], the node's configuration first changed by `adjust`.
    pub async fn start_configured(adjust: impl FnOnce(&mut NodeConfig)) -> Result<Self> {
        let db = TestDb::create().await?;
        let pki = TestPki::new()?;
        let mut config = TestNode::config(&db, &pki, "E06000001")?;
        adjust(&mut config);
        let node = TestNode::start_config(config, Arc::new(SystemClock)).await?;
        let client = node
            .client(&pki.client_files("E06000001", "Test practitioner")?)
            .await?;
        Ok(Self {
            db,
            pki,
            node,
            client,
        })
    }
}

/// A gateway serving on a loopback port until stopped, in front of nodes.
pub struct TestGateway {
    pub address: SocketAddr,
    pub config: contactpoint_gateway::GatewayConfig,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), contactpoint_gateway::StartError>>>,
}

/// The node list a gateway is given: (code, address) for each node, which
/// may be a node, a proxy in front of one, or a port nothing listens on.
pub fn node_entries(nodes: &[(&str, SocketAddr)]) -> Vec<contactpoint_gateway::config::NodeEntry> {
    nodes
        .iter()
        .map(|(code, address)| contactpoint_gateway::config::NodeEntry {
            code: (*code).into(),
            name: format!("Authority {code}"),
            endpoint: format!("https://localhost:{}", address.port()),
            server_name: Some("localhost".into()),
        })
        .collect()
}

impl TestGateway {
    /// A gateway configuration for tests: short deadlines and polls.
    pub fn config(
        db: &TestDb,
        pki: &TestPki,
        nodes: &[(&str, SocketAddr)],
    ) -> Result<contactpoint_gateway::GatewayConfig> {
        Ok(contactpoint_gateway::GatewayConfig {
            listen: "127.0.0.1:0".parse()?,
            database_url: db.url.clone(),
            pool_size: 4,
            policy: pki.policy_path(),
            tls: pki.issue(
                "gateway",
                Subject {
                    organisation: GATEWAY_ORGANISATION,
                    unit: Some("gateway"),
                    common_name: "gateway",
                    server_names: &["localhost", "127.0.0.1"],
                    validity: Validity::Current,
                },
            )?,
            search_deadline_ms: 1000,
            lookup_timeout_ms: 3000,
            feed_poll_ms: 100,
            transfer_retry_ms: 100,
            witness_interval_ms: 200,
            flag_searches_without_view: 3,
            metrics_listen: Some("127.0.0.1:0".parse()?),
            drain_seconds: 0,
            log_format: Default::default(),
            matching_key: Some(pki.matching_key_path()),
            request_timeout_seconds: 10,
            limits: contactpoint_gateway::config::Limits::default(),
            nodes: node_entries(nodes),
        })
    }

    pub async fn start(mut config: contactpoint_gateway::GatewayConfig) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let metrics = bind_metrics(&mut config.metrics_listen).await?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(contactpoint_gateway::serve_on(
            config.clone(),
            listener,
            metrics,
            async {
                let _ = stopped.await;
            },
        ));
        let gateway = Self {
            address,
            config,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        for _ in 0..200 {
            if gateway.task.as_ref().is_some_and(JoinHandle::is_finished) {
                anyhow::bail!("the gateway stopped while starting");
            }
            if let Ok(channel) = connect(address, &gateway.config.tls).await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest {
                    service: "contactpoint.v1.Gateway".into(),
                };
                if let Ok(response) = health.check(request).await {
                    if response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                    {
                        return Ok(gateway);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the gateway did not become healthy")
    }

    /// A client presenting `files`.
    pub async fn client(
        &self,
        files: &TlsFiles,
    ) -> Result<pb::gateway_client::GatewayClient<Channel>> {
        Ok(pb::gateway_client::GatewayClient::new(
            connect(self.address, files).await?,
        ))
    }

    pub async fn stop(mut self) -> Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A TCP proxy that holds every byte from the client for `delay` before
/// passing it on: a node that answers, but too slowly.
pub async fn slow_proxy(upstream: SocketAddr, delay: Duration) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upward = async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let n = client_read.read(&mut buffer).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        tokio::time::sleep(delay).await;
                        server_write.write_all(&buffer[..n]).await?;
                    }
                };
                let downward = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(upward, downward);
            });
        }
    });
    Ok(address)
}

/// A loopback address nothing listens on: a node that is down.
pub async fn dead_address() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    drop(listener);
    Ok(address)
}

/// A lookup of `id`, with the reason the tests state.
pub fn lookup(id: &str) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        reason: "checking the test child's record".into(),
        id: id.to_owned(),
        ..Default::default()
    }
}

/// Polls `check` every 50 ms for up to 20 s until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..400 {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// A federation for tests: one database server, a node per authority (each
/// its own database), a gateway, and the CA.
pub struct Federation {
    pub pki: TestPki,
    pub node_dbs: Vec<TestDb>,
    pub nodes: Vec<TestNode>,
    pub gateway_db: TestDb,
    pub gateway: TestGateway,
}

impl Federation {
    /// Nodes for `codes` and a gateway in front of them.
    pub async fn start(codes: &[&str]) -> Result<Self> {
        let pki = TestPki::new()?;
        let mut node_dbs = Vec::new();
        let mut nodes = Vec::new();
        for code in codes {
            let db = TestDb::create().await?;
            nodes.push(TestNode::start(&db, &pki, code).await?);
            node_dbs.push(db);
        }
        let gateway_db = TestDb::create().await?;
        let entries: Vec<_> = codes
            .iter()
            .zip(&nodes)
            .map(|(code, node)| (*code, node.address))
            .collect();
        let gateway = TestGateway::start(TestGateway::config(&gateway_db, &pki, &entries)?).await?;
        Ok(Self {
            pki,
            node_dbs,
            nodes,
            gateway_db,
            gateway,
        })
    }

    /// A client of the node at `index` as that authority's own staff.
    pub async fn staff(&self, index: usize) -> Result<AuthorityNodeClient<Channel>> {
        let code = self.nodes[index].config.authority_code.clone();
        self.nodes[index]
            .client(&self.pki.client_files(&code, "Social worker")?)
            .await
    }

    /// Waits until the gateway's routing index places `record_id` at `code`.
    pub async fn wait_until_routed(&self, record_id: &str, code: &str) -> Result<()> {
        let db = self.gateway_db.connect().await?;
        eventually("the routing index", || async {
            let row = db
                .query_opt(
                    "SELECT authority_code FROM routing_index WHERE record_id = $1",
                    &[&record_id],
                )
                .await?;
            Ok(row.filter(|row| row.get::<_, &str>(0) == code).map(|_| ()))
        })
        .await
    }
}

impl Federation {
    /// How many calls of `method` the audit of node `index` holds.
    pub async fn node_audited(&self, index: usize, method: &str) -> Result<i64> {
        Ok(self.node_dbs[index]
            .connect()
            .await?
            .query_one(
                "SELECT count(*) FROM audit_event WHERE method = $1",
                &[&method],
            )
            .await?
            .get(0))
    }

    /// A transfer worker of our own on the gateway's journal, to take steps
    /// one at a time (and stop between them, as a crash would).
    pub async fn transfer_worker(&self) -> Result<contactpoint_gateway::transfer::Transfers> {
        let store = contactpoint_gateway::store::Store::open(&self.gateway_db.url, 2).await?;
        let directory = contactpoint_gateway::nodes::Directory::new(
            &self.gateway.config.nodes,
            &self.gateway.config.tls,
        )?;
        Ok(contactpoint_gateway::transfer::Transfers::new(
            store,
            directory,
            Default::default(),
            Duration::from_millis(50),
        ))
    }

    /// Journals a transfer without starting it (no worker drives it until
    /// the gateway restarts or a test advances it), asked for by the sending
    /// authority's social worker and consented to by its management team.
    pub async fn journal_transfer(&self, record_id: &str, from: &str, to: &str) -> Result<String> {
        let consent = format!("{from}/management/Data manager");
        self.journal_transfer_with(record_id, from, to, Some(&consent))
            .await
    }

    /// As [`Federation::journal_transfer`], with the consent the journal
    /// names ("organisation/unit/name"), if any: a gateway's word, which
    /// the sending node checks.
    pub async fn journal_transfer_with(
        &self,
        record_id: &str,
        from: &str,
        to: &str,
        consent: Option<&str>,
    ) -> Result<String> {
        let store = contactpoint_gateway::store::Store::open(&self.gateway_db.url, 1).await?;
        let row = store
            .insert_transfer(
                record_id,
                from,
                to,
                (
                    &format!("{from}//Social worker"),
                    &format!("schedule3:1(2)(a)@{from}"),
                ),
                consent,
                None,
            )
            .await?
            .map_err(|open| anyhow::anyhow!("already in {}", open.transfer_id))?;
        Ok(row.transfer_id)
    }

    /// Restarts the gateway on its database (a crash and recovery).
    pub async fn restart_gateway(&mut self) -> Result<()> {
        let mut config = self.gateway.config.clone();
        config.listen = "127.0.0.1:0".parse()?;
        config.metrics_listen = Some("127.0.0.1:0".parse()?);
        let fresh = TestGateway::start(config).await?;
        let old = std::mem::replace(&mut self.gateway, fresh);
        drop(old);
        Ok(())
    }

    /// The sending authority's management team consents, through the
    /// gateway, to a transfer awaiting it.
    pub async fn consent_transfer(&self, transfer_id: &str, from: &str) -> Result<pb::Transfer> {
        Ok(self
            .gateway
            .client(&self.pki.management_files(from, "Data manager")?)
            .await?
            .consent_transfer(pb::GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// The journaled state of a transfer.
    pub async fn transfer_state(&self, transfer_id: &str) -> Result<String> {
        let db = self.gateway_db.connect().await?;
        Ok(db
            .query_one(
                "SELECT state FROM transfer WHERE transfer_id = $1",
                &[&transfer_id],
            )
            .await?
            .get(0))
    }

    /// Waits until a transfer reaches `state`.
    pub async fn wait_for_transfer(&self, transfer_id: &str, state: &str) -> Result<()> {
        eventually(&format!("transfer {transfer_id} to be {state}"), || async {
            Ok((self.transfer_state(transfer_id).await? == state).then_some(()))
        })
        .await
    }

    /// How many nodes serve `record_id` live, and which.
    pub async fn live_copies(&self, record_id: &str) -> Result<Vec<String>> {
        let mut live = Vec::new();
        for (db, node) in self.node_dbs.iter().zip(&self.nodes) {
            let rows: i64 = db
                .connect()
                .await?
                .query_one(
                    "SELECT count(*) FROM child_record WHERE id = $1 AND status = 'live'",
                    &[&record_id],
                )
                .await?
                .get(0);
            if rows > 0 {
                live.push(node.config.authority_code.clone());
            }
        }
        Ok(live)
    }
}
