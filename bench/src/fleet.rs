//! The servers a benchmark runs: a development CA and access policy, one
//! database per node cloned from a migrated template, node and gateway
//! processes from the workspace's own binaries, nginx, and the bare tonic
//! server; each a child process that is stopped when dropped.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use contactpoint_mtls::devca::{DevCa, Subject, Validity};
use contactpoint_mtls::TlsFiles;
use tonic::transport::{Channel, Endpoint};

use crate::population::Authority;

/// The organisation and name on the benchmark's reader certificate.
pub const READER_ORGANISATION: &str = "NSPCC";
pub const READER_NAME: &str = "Bench reader";
const GATEWAY_ORGANISATION: &str = "ContactPoint gateway";

fn threads_env(threads: Option<usize>) -> Vec<(&'static str, String)> {
    threads
        .map(|threads| ("TOKIO_WORKER_THREADS", threads.to_string()))
        .into_iter()
        .collect()
}

/// The benchmark's working folder: certificates, configuration, logs.
pub struct Workspace {
    pub dir: PathBuf,
    /// Where cpbench's sibling binaries are (contactpoint-node, ...).
    pub bin: PathBuf,
    /// Worker threads of each node process sharing the host and of each
    /// gateway (tokio's TOKIO_WORKER_THREADS); `None` for tokio's default,
    /// one per core.
    pub node_threads: Option<usize>,
    pub gateway_threads: Option<usize>,
}

impl Workspace {
    pub fn new(
        dir: &Path,
        node_threads: Option<usize>,
        gateway_threads: Option<usize>,
    ) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("pki"))?;
        let dir = std::fs::canonicalize(dir)?;
        let exe = std::env::current_exe()?;
        let bin = exe.parent().context("cpbench has no folder")?.to_path_buf();
        Ok(Self {
            dir,
            bin,
            node_threads,
            gateway_threads,
        })
    }

    /// The environment of a node process sharing the host.
    pub fn node_env(&self) -> Vec<(&'static str, String)> {
        threads_env(self.node_threads)
    }

    pub fn gateway_env(&self) -> Vec<(&'static str, String)> {
        threads_env(self.gateway_threads)
    }

    /// This build's gateway binary.
    pub fn gateway_program(&self) -> PathBuf {
        self.bin.join("contactpoint-gateway")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The certificate and key issued as `stem`, with the CA.
    pub fn files(&self, stem: &str) -> TlsFiles {
        TlsFiles {
            ca: self.path("pki/ca.pem"),
            cert: self.path(&format!("pki/{stem}.pem")),
            key: self.path(&format!("pki/{stem}.key")),
            crls: vec![],
        }
    }

    /// A CA, a certificate for every node, the gateway, nginx and the bare
    /// server (servers on "localhost"), the reader, and a loader per authority.
    pub fn issue_certificates(&self, authorities: &[Authority]) -> Result<()> {
        let ca = DevCa::generate("ContactPoint benchmark CA")?;
        std::fs::write(self.path("pki/ca.pem"), ca.cert_pem())?;
        std::fs::write(
            self.path("pki/matching.key"),
            contactpoint_matching::blocking::MatchingKeys::generate("bench-1")
                .map_err(anyhow::Error::msg)?,
        )?;
        let issue =
            |stem: &str, organisation: &str, unit: Option<&str>, name: &str, server: bool| {
                let localhost = ["localhost"];
                let issued = ca.issue(&Subject {
                    organisation,
                    unit,
                    common_name: name,
                    server_names: if server { &localhost } else { &[] },
                    validity: Validity::Current,
                })?;
                std::fs::write(self.path(&format!("pki/{stem}.pem")), issued.cert_pem)?;
                std::fs::write(self.path(&format!("pki/{stem}.key")), issued.key_pem)?;
                anyhow::Ok(())
            };
        for authority in authorities {
            let code = &authority.code;
            issue(
                &format!("node-{code}"),
                code,
                Some("node"),
                &format!("{code} node"),
                true,
            )?;
            issue(&format!("loader-{code}"), code, None, "Bench loader", false)?;
            std::fs::write(
                self.path(&format!("pki/audit-{code}.key")),
                contactpoint_mtls::devca::generate_key_pem()?,
            )?;
        }
        issue(
            "gateway",
            GATEWAY_ORGANISATION,
            Some("gateway"),
            "gateway",
            true,
        )?;
        issue("reader", READER_ORGANISATION, None, READER_NAME, false)?;
        issue(
            "nginx",
            "ContactPoint benchmark",
            Some("proxy"),
            "nginx",
            true,
        )?;
        issue(
            "bare",
            "ContactPoint benchmark",
            Some("bare"),
            "bare tonic",
            true,
        )?;
        Ok(())
    }

    /// The access policy: each authority's node and loader (a practitioner
    /// of that authority), the gateway, and the reader (a Schedule 2
    /// national partner), all with their access conditions met.
    pub fn write_policy(&self, authorities: &[Authority]) -> Result<PathBuf> {
        let recorded = (chrono::Utc::now().date_naive() - chrono::Duration::days(365)).to_string();
        let mut text = String::from(
            "[access]\nconditions_required = true\nallow_organisation_wide_conditions = true\n",
        );
        let conditions = |organisation: &str| {
            format!(
                "\n[[conditions]]\norganisation = \"{organisation}\"\ntraining_completed_on = {recorded}\ncriminal_record_check_on = {recorded}\nuser_agreement_signed_on = {recorded}\n"
            )
        };
        for authority in authorities {
            let code = &authority.code;
            text.push_str(&conditions(code));
            text.push_str(&format!(
                "\n[[identity]]\norganisation = \"{code}\"\nrole = \"practitioner\"\nschedule3 = \"1(2)(a)\"\nauthority = \"{code}\"\n\n[[identity]]\norganisation = \"{code}\"\nunit = \"node\"\nrole = \"node\"\nauthority = \"{code}\"\n"
            ));
        }
        text.push_str(&conditions(READER_ORGANISATION));
        text.push_str(&format!(
            "\n[[identity]]\norganisation = \"{READER_ORGANISATION}\"\nrole = \"national_partner\"\nschedule2 = 3\n\n[[identity]]\norganisation = \"{GATEWAY_ORGANISATION}\"\nrole = \"gateway\"\n"
        ));
        let path = self.path("policy.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// A free port on loopback for a server to take: below Linux's ephemeral
/// range (32768 and up), so no outgoing connection of the hundreds the
/// federation opens can take it between this check and the server's bind.
pub fn free_port() -> Result<SocketAddr> {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Each run starts at its own place in the range, so two runs on one
    // machine (the smoke test beside scripts/bench) do not take turns at
    // the same ports.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        21000 + (std::process::id() % 50) as u16 * 200,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        if port >= 32000 {
            bail!("no free port left between 21000 and 32000 on 127.0.0.1");
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
}

/// A server process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `program` with `args` and `env`, its output to `log`.
    pub fn spawn(
        name: &str,
        address: SocketAddr,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            address,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mutual TLS channel to a server on loopback that presents a
/// certificate for "localhost".
pub async fn channel(address: SocketAddr, files: &TlsFiles) -> Result<Channel> {
    let tls = contactpoint_mtls::client_tls(files, "localhost")?;
    Ok(
        Endpoint::from_shared(format!("https://localhost:{}", address.port()))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect()
            .await?,
    )
}

/// Waits until `server` answers the health service as serving `service`.
pub async fn wait_serving(server: &mut Server, files: &TlsFiles, service: &str) -> Result<()> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        server.check_running()?;
        if let Ok(channel) = channel(server.address, files).await {
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            if answer.is_ok_and(|answer| answer.into_inner().status == 1) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{} did not start serving within two minutes", server.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database for each node, cloned from one migrated template (a node's
/// migrations run once, not once per authority).
pub struct Databases {
    admin: tokio_postgres::Client,
    base_url: String,
    prefix: String,
}

impl Databases {
    pub async fn open(admin_url: &str, prefix: &str) -> Result<Self> {
        let (admin, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .context("cannot reach PostgreSQL")?;
        tokio::spawn(connection);
        let base_url = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .context("the admin URL names no database")?;
        Ok(Self {
            admin,
            base_url,
            prefix: prefix.to_owned(),
        })
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{}_{name}", self.base_url, self.prefix)
    }

    /// The server processes (backends) connected to these databases now.
    pub async fn backends(&self, names: &[&str]) -> Result<Vec<u32>> {
        let full: Vec<String> = names
            .iter()
            .map(|name| format!("{}_{name}", self.prefix))
            .collect();
        let rows = self
            .admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)",
                &[&full],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect())
    }

    /// Vacuums and analyses a database, as after any bulk load: the planner
    /// gets its statistics and autovacuum has nothing left to do mid-run.
    pub async fn vacuum(&self, name: &str) -> Result<()> {
        self.connect(name)
            .await?
            .batch_execute("VACUUM (ANALYZE)")
            .await?;
        Ok(())
    }

    /// A connection to the database `name` (closed when dropped).
    async fn connect(&self, name: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.url(name), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// How many records the gateway's routing index holds.
    pub async fn routes(&self, gateway: &str) -> Result<i64> {
        let row = self
            .connect(gateway)
            .await?
            .query_one("SELECT count(*) FROM routing_index", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Writes every dirty page to disk now (a CHECKPOINT).
    pub async fn checkpoint(&self) -> Result<()> {
        self.admin.batch_execute("CHECKPOINT").await?;
        Ok(())
    }

    /// Creates (anew) the database `name`, empty or from `template`.
    pub async fn create(&self, name: &str, template: Option<&str>) -> Result<String> {
        let full = format!("{}_{name}", self.prefix);
        self.admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{full}\" WITH (FORCE)"))
            .await?;
        let from = template
            .map(|template| format!(" TEMPLATE \"{}_{template}\"", self.prefix))
            .unwrap_or_default();
        self.admin
            .batch_execute(&format!("CREATE DATABASE \"{full}\"{from}"))
            .await
            .with_context(|| format!("cannot create database {full}"))?;
        Ok(self.url(name))
    }

    /// A template holding the node's schema, made by the node's own migrations.
    pub async fn node_template(&self) -> Result<()> {
        let url = self.create("template", None).await?;
        let store = contactpoint_node::store::Store::open(
            &url,
            1,
            contactpoint_node::model::ResponsibleAuthority {
                code: "E00000000".into(),
                name: "template".into(),
            },
        )
        .await?;
        drop(store);
        Ok(())
    }

    /// Drops every database this benchmark made.
    pub async fn drop_all(&self) -> Result<()> {
        let rows = self
            .admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1",
                &[&format!("{}\\_%", self.prefix)],
            )
            .await?;
        for row in rows {
            let name: String = row.get(0);
            self.admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await?;
        }
        Ok(())
    }
}

/// Starts the node of `authority` on its database; `instance` tells apart
/// the files of a second node process of the same authority. A node on a
/// `shared` host runs with the workspace's node threads; one that is not
/// (the node measured, as an authority's own) with tokio's default.
pub fn start_node(
    work: &Workspace,
    authority: &Authority,
    instance: &str,
    database_url: String,
    pool_size: usize,
    shared: bool,
) -> Result<Server> {
    let address = free_port()?;
    let code = &authority.code;
    let config = contactpoint_node::NodeConfig {
        authority_code: code.clone(),
        authority_name: authority.name.clone(),
        listen: address,
        database_url,
        schema_owner_url: None,
        pool_size,
        pool_wait_ms: 10_000,
        statement_timeout_ms: 60_000,
        request_timeout_seconds: 60,
        archive_interval_seconds: 3600,
        audit_checkpoint_seconds: 60,
        notification_retention_days: 730,
        concurrency_per_connection: 256,
        tls: work.files(&format!("node-{code}")),
        audit_key: work.path(&format!("pki/audit-{code}.key")),
        audit_previous_key: None,
        policy: work.path("policy.toml"),
        metrics_listen: None,
        // Stopped by SIGTERM one after another: no drain.
        drain_seconds: 0,
        log_format: Default::default(),
        matching_key: Some(work.path("pki/matching.key")),
        // The load generator is one caller: not rate limited here either.
        limits: unlimited(),
    };
    let path = work.path(&format!("node-{code}{instance}.toml"));
    std::fs::write(&path, toml::to_string(&config)?)?;
    Server::spawn(
        &format!("node {code}"),
        address,
        &work.bin.join("contactpoint-node"),
        &["--config", path.to_str().context("path")?],
        &if shared { work.node_env() } else { vec![] },
        &work.path(&format!("node-{code}{instance}.log")),
    )
}

/// Whether the gateway `program` accepts the configuration at `path`
/// (`--check`: validates and exits).
fn accepts(program: &Path, path: &Path) -> Result<bool> {
    Ok(std::process::Command::new(program)
        .arg("--check")
        .arg("--config")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?
        .success())
}

/// Limits no load generator reaches: it is one caller, measuring capacity.
fn unlimited() -> contactpoint_gateway::config::Limits {
    contactpoint_gateway::config::Limits {
        per_caller_in_flight: 4096,
        per_caller_per_second: 1e9,
        per_caller_burst: 1e9,
        global_in_flight: 8192,
    }
}

/// Starts a gateway over `nodes`, with limits raised so that one caller
/// (the load generator) is not rate limited.
/// `program` is the gateway's binary: this build's, or one compared with it.
pub fn start_gateway(
    work: &Workspace,
    program: &Path,
    name: &str,
    database_url: String,
    nodes: &[(&Authority, SocketAddr)],
) -> Result<Server> {
    use contactpoint_gateway::config::NodeEntry;
    let address = free_port()?;
    let mut config: contactpoint_gateway::GatewayConfig = toml::from_str(&format!(
        "database_url = \"{database_url}\"\npolicy = \"{}\"\nlisten = \"{address}\"\nnodes = []\n[tls]\nca = \"\"\ncert = \"\"\nkey = \"\"\n",
        work.path("policy.toml").display()
    ))?;
    config.tls = work.files("gateway");
    // This build's gateway keeps the blind index; a build compared with it
    // may predate the setting (its configuration denies unknown fields).
    let this_build = program == work.bin.join("contactpoint-gateway");
    if this_build {
        config.matching_key = Some(work.path("pki/matching.key"));
    }
    // Stopped by SIGTERM: no drain.
    config.drain_seconds = 0;
    config.search_deadline_ms = 30_000;
    config.limits = unlimited();
    config.request_timeout_seconds = 60;
    config.nodes = nodes
        .iter()
        .map(|(authority, address)| NodeEntry {
            code: authority.code.clone(),
            name: authority.name.clone(),
            endpoint: format!("https://localhost:{}", address.port()),
            server_name: None,
        })
        .collect();
    let path = work.path(&format!("gateway-{name}.toml"));
    let mut written = toml::Table::try_from(&config)?;
    std::fs::write(&path, toml::to_string(&written)?)?;
    if !this_build && !accepts(program, &path)? {
        // An older build may not know the drain (and drains not at all)...
        written.remove("drain_seconds");
        // ...and took the request timeout inside `[limits]`.
        if let (Some(timeout), Some(toml::Value::Table(limits))) = (
            written.remove("request_timeout_seconds"),
            written.get_mut("limits"),
        ) {
            limits.insert("request_timeout_seconds".into(), timeout);
        }
        std::fs::write(&path, toml::to_string(&written)?)?;
    }
    Server::spawn(
        &format!("gateway {name}"),
        address,
        program,
        &["--config", path.to_str().context("path")?],
        &work.gateway_env(),
        &work.path(&format!("gateway-{name}.log")),
    )
}

/// nginx as an authority would put it in front of its node: a plain gRPC
/// proxy (`grpc_pass`) with mutual TLS to the client and to the node, and
/// kept-alive upstream connections. It presents the reader's certificate
/// to the node, so the node does the same work as for a direct call.
pub fn start_nginx(work: &Workspace, nginx: &Path, node: SocketAddr) -> Result<Server> {
    let address = free_port()?;
    let prefix = work.path("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let pki = work.path("pki");
    let (pki, prefix_text) = (pki.display(), prefix.display());
    let conf = format!(
        r#"# Written by cpbench: nginx as a gRPC proxy in front of one node.
daemon off;
master_process on;
worker_processes auto;
pid {prefix_text}/nginx.pid;
error_log {prefix_text}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix_text}/client_body;
    proxy_temp_path {prefix_text}/proxy;
    fastcgi_temp_path {prefix_text}/fastcgi;
    uwsgi_temp_path {prefix_text}/uwsgi;
    scgi_temp_path {prefix_text}/scgi;
    upstream node {{
        server 127.0.0.1:{node_port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_protocols TLSv1.3;
        ssl_certificate {pki}/nginx.pem;
        ssl_certificate_key {pki}/nginx.key;
        ssl_client_certificate {pki}/ca.pem;
        ssl_verify_client on;
        # A client's HTTP/2 connection serves many requests (the default of
        # 1000 closes it mid-run, failing the requests in flight).
        keepalive_requests 1000000;
        keepalive_timeout 600s;
        location / {{
            grpc_pass grpcs://node;
            grpc_ssl_protocols TLSv1.3;
            grpc_ssl_certificate {pki}/reader.pem;
            grpc_ssl_certificate_key {pki}/reader.key;
            grpc_ssl_trusted_certificate {pki}/ca.pem;
            grpc_ssl_verify on;
            grpc_ssl_name localhost;
            grpc_ssl_server_name on;
            grpc_ssl_session_reuse on;
        }}
    }}
}}
"#,
        node_port = node.port(),
        port = address.port(),
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf)?;
    Server::spawn(
        "nginx",
        address,
        nginx,
        &[
            "-p",
            prefix.to_str().context("path")?,
            "-c",
            path.to_str().context("path")?,
        ],
        &[],
        &work.path("nginx.log"),
    )
}

/// The bare tonic server, with its own certificate.
pub fn start_bare(work: &Workspace) -> Result<Server> {
    let address = free_port()?;
    let files = work.files("bare");
    let text = |path: &Path| path.to_str().map(str::to_owned).context("path");
    Server::spawn(
        "bare tonic server",
        address,
        &work.bin.join("bare-tonic-server"),
        &[
            &address.to_string(),
            &text(&files.ca)?,
            &text(&files.cert)?,
            &text(&files.key)?,
        ],
        // Threads as the node it is measured against has them.
        &[],
        &work.path("bare.log"),
    )
}
