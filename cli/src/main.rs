//! `cpctl`: the command line for authorities, partners and operators. It
//! speaks to a node or the gateway over mutual TLS with the user's own
//! certificate: who am I, search, show, create, update, load, transfer,
//! audit, notifications, health; and it keeps a development certificate
//! authority (`pki`). Tables by default, `--json` for scripts; the exit code
//! says how a call ended (see `--help`).
use anyhow::{bail, Context, Result};
use chrono::{Datelike, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::Channel;

use contactpoint_mtls::devca::{DevCa, Subject, Validity};
use contactpoint_mtls::TlsFiles;
use contactpoint_proto::sample;
use contactpoint_proto::v1::{
    self as pb, authority_node_client::AuthorityNodeClient, gateway_client::GatewayClient,
};

mod load;
mod pki;
mod render;

const EXIT_CODES: &str =
    "Exit codes: 0 done; 1 failed (cannot connect, bad file...); 2 bad command line; \
3 invalid argument; 4 not found; 5 permission denied; 6 failed precondition (stale version, \
transfer state); 7 unavailable (try again); 8 partly done (rows rejected by load).";

const EXAMPLES: &str =
    "Examples (CPCTL_ENDPOINT, CPCTL_CA, CPCTL_CERT and CPCTL_KEY stand for the connection flags):
  cpctl pki init --dir pki && cpctl pki node --dir pki --code E06000001
  cpctl pki user --dir pki --organisation NSPCC --name 'Jo Smith' --schedule2 3
  cpctl whoami
  cpctl search --surname Hartley --dob 2026-07-26 --reason 'referral from a health visitor'
  cpctl show E06000001-00000001-77 --reason 'referral from a health visitor' --json
  cpctl load children.csv --rejected rejected.csv
  cpctl transfer start E06000001-00000001-77 --to E06000003 --wait
  cpctl audit who E06000001-00000001-77 --reason 'subject access request'
  cpctl audit verify --config node.toml";

/// The command line for the children's index.
#[derive(Debug, Parser)]
#[command(version, about, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"))]
struct Cli {
    /// Print JSON (one document, or one per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A development certificate authority in a folder: CA, node, gateway
    /// and user certificates, revocation (CRL).
    Pki {
        #[command(subcommand)]
        action: PkiAction,
    },
    /// Makes (or extends) a development CA in a folder: ca.pem, and a
    /// certificate and key per node and per client. Keeps an existing CA.
    #[command(hide = true)]
    DevCa {
        /// The folder for the PEM files.
        #[arg(long)]
        dir: PathBuf,
        /// A node certificate for this authority's GSS code (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// A client certificate as ORGANISATION/NAME (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
        /// Also a certificate for the gateway.
        #[arg(long)]
        gateway: bool,
    },
    /// The identity and role the server sees for your certificate, and
    /// whether your access conditions are met.
    Whoami {
        #[command(flatten)]
        target: NodeArgs,
    },
    /// Waits until the server's health service says SERVING.
    Health {
        #[command(flatten)]
        node: NodeArgs,
        /// Seconds to keep trying.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// The gRPC service to ask about.
        #[arg(long, default_value = "contactpoint.v1.AuthorityNode")]
        service: String,
    },
    /// Shows one record by identifier (node or gateway).
    #[command(alias = "get")]
    Show {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
        /// Why you are looking (required; audited).
        #[arg(long)]
        reason: String,
        /// Your role has child protection functions and you must see a
        /// shielded record for the stated reason (audited, reported).
        #[arg(long)]
        override_shielding: bool,
    },
    /// Searches by surname and date of birth (or postcode).
    Search {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        surname: String,
        #[arg(long, default_value = "")]
        forename: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        dob: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "")]
        postcode: String,
        /// Why you are searching (required; audited with the search).
        #[arg(long)]
        reason: String,
    },
    /// Creates a record at a node from a JSON file (a CreateRecordRequest in
    /// the protobuf JSON mapping).
    Create {
        #[command(flatten)]
        node: NodeArgs,
        file: PathBuf,
    },
    /// Replaces a record's details from a JSON file (RecordDetails), if the
    /// record is still at the version you read.
    Update {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
        /// The version you read (`show` prints it).
        #[arg(long)]
        version: u64,
        file: PathBuf,
    },
    /// Loads records into a node from CSV (given_names, family_name, gender,
    /// date_of_birth, address, town, postcode) or JSON lines (one
    /// CreateRecordRequest each), in one LoadRecords stream: batches of up to
    /// 1000, each written whole or not at all; rejected rows go to a file
    /// with the reason for each.
    Load {
        #[command(flatten)]
        node: NodeArgs,
        file: PathBuf,
        /// Where the rejected rows go. Default: FILE with .rejected.csv.
        #[arg(long)]
        rejected: Option<PathBuf>,
    },
    /// Transfers between authorities, through the gateway.
    Transfer {
        #[command(subcommand)]
        action: TransferAction,
    },
    /// Who has looked at a record, and checking an audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// What your authority has been told: views by other organisations,
    /// shielding overrides, possible duplicates (a node; management team).
    Notifications {
        #[command(flatten)]
        node: NodeArgs,
        /// Only those after this notification id.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Records a set of sample children at a node (0, 1 or 2).
    Seed {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        set: usize,
    },
    /// The demonstration through the gateway, with the certificates `dev-ca` made in --pki.
    FederationDemo {
        /// The gateway's address, for example https://localhost:7400.
        #[arg(long)]
        endpoint: String,
        /// The development CA folder.
        #[arg(long)]
        pki: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PkiAction {
    /// Makes the CA (ca.pem, ca.key) unless the folder has one.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// A node's server certificate (node-<CODE>.pem/.key).
    Node {
        #[arg(long)]
        dir: PathBuf,
        /// The authority's GSS code.
        #[arg(long)]
        code: String,
        /// Host names the certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
    },
    /// The gateway's certificate (gateway.pem/.key).
    Gateway {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
    },
    /// A user's certificate, and the policy entries that give them their role.
    User {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate's O: the user's organisation.
        #[arg(long)]
        organisation: String,
        /// The certificate's OU, if the policy distinguishes units.
        #[arg(long)]
        unit: Option<String>,
        /// The certificate's CN: the user's name.
        #[arg(long)]
        name: String,
        /// A national partner's staff: Schedule 2 paragraph 1 to 7.
        #[arg(long, group = "role")]
        schedule2: Option<u8>,
        /// A practitioner: Schedule 3 paragraph, e.g. "3" or "9(1)(d)"; needs --authority.
        #[arg(long, group = "role", requires = "authority")]
        schedule3: Option<String>,
        /// An authority's management team member; needs --authority.
        #[arg(long, group = "role", requires = "authority")]
        management: bool,
        /// An operator.
        #[arg(long, group = "role")]
        operator: bool,
        /// The authority that gave access (GSS code).
        #[arg(long)]
        authority: Option<String>,
    },
    /// Revokes a certificate this CA issued (by its file name, without
    /// .pem) and writes crl.pem; send the servers SIGHUP.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        name: String,
    },
    /// Reissues crl.pem (it is good for 30 days); send the servers SIGHUP.
    Crl {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TransferAction {
    /// Starts moving a record to the authority now responsible.
    Start {
        #[command(flatten)]
        gateway: NodeArgs,
        id: String,
        /// GSS code of the authority becoming responsible.
        #[arg(long)]
        to: String,
        /// Wait until the transfer ends.
        #[arg(long)]
        wait: bool,
    },
    /// One transfer's state.
    Status {
        #[command(flatten)]
        gateway: NodeArgs,
        transfer_id: String,
    },
    /// An authority's transfers in and out.
    List {
        #[command(flatten)]
        gateway: NodeArgs,
        #[arg(long)]
        authority: String,
    },
    /// Cancels a transfer before its cutover.
    Cancel {
        #[command(flatten)]
        gateway: NodeArgs,
        transfer_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Who has accessed a record, at every authority it has passed through
    /// (the gateway's subject access request; the responsible authority's staff).
    Who {
        #[command(flatten)]
        gateway: NodeArgs,
        id: String,
        /// Why (for example the subject access request); required, audited.
        #[arg(long)]
        reason: String,
    },
    /// Verifies a node's audit log end to end (on the node's host: reads its
    /// database and certificate from its configuration).
    Verify {
        /// The node's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// The gateway's countersigned checkpoints (contactpoint-gateway --export-witness).
        #[arg(long, requires = "witness_cert")]
        witness: Option<PathBuf>,
        /// The gateway's certificate.
        #[arg(long, requires = "witness")]
        witness_cert: Option<PathBuf>,
    },
}

/// Where the server is and who we are.
#[derive(Debug, Args)]
struct NodeArgs {
    /// The server's address, for example https://localhost:7401 (a node) or :7400 (the gateway).
    #[arg(long, env = "CPCTL_ENDPOINT")]
    endpoint: String,
    /// The federation CA certificate.
    #[arg(long, env = "CPCTL_CA")]
    ca: PathBuf,
    /// Our client certificate.
    #[arg(long, env = "CPCTL_CERT")]
    cert: PathBuf,
    /// Our private key.
    #[arg(long, env = "CPCTL_KEY")]
    key: PathBuf,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

impl NodeArgs {
    async fn channel(&self) -> Result<Channel> {
        let files = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            crls: vec![],
        };
        let tls = contactpoint_mtls::client_tls(&files, &self.server_name)?;
        Channel::from_shared(self.endpoint.clone())?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach {}", self.endpoint))
    }

    async fn client(&self) -> Result<AuthorityNodeClient<Channel>> {
        Ok(AuthorityNodeClient::new(self.channel().await?))
    }

    async fn gateway(&self) -> Result<GatewayClient<Channel>> {
        Ok(GatewayClient::new(self.channel().await?))
    }

    /// Whether this is the gateway: its health service names the Gateway.
    async fn is_gateway(&self) -> Result<bool> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel().await?);
        let asked = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "contactpoint.v1.Gateway".into(),
            })
            .await;
        Ok(asked.is_ok())
    }
}

/// Some of the work was done, some refused (exit code 8).
#[derive(Debug)]
struct Partial(String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}

/// The exit code for how a command failed (see `EXIT_CODES`).
fn exit_code(error: &anyhow::Error) -> u8 {
    use tonic::Code;
    if error.downcast_ref::<Partial>().is_some() {
        return 8;
    }
    let Some(status) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<tonic::Status>())
    else {
        return 1;
    };
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => 3,
        Code::NotFound => 4,
        Code::PermissionDenied | Code::Unauthenticated => 5,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => 6,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => 7,
        _ => 1,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error
                .chain()
                .find_map(|cause| cause.downcast_ref::<tonic::Status>())
            {
                Some(status) => eprintln!("refused: {:?}: {}", status.code(), status.message()),
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Prints `value` as JSON, or `text` for people.
fn emit<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not the expected JSON", path.display()))
}

async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Pki { action } => pki_command(action),
        Command::DevCa {
            dir,
            nodes,
            clients,
            gateway,
        } => dev_ca(&dir, &nodes, &clients, gateway),
        Command::Whoami { target } => {
            let me = if target.is_gateway().await? {
                target
                    .gateway()
                    .await?
                    .who_am_i(pb::WhoAmIRequest {})
                    .await?
            } else {
                target
                    .client()
                    .await?
                    .who_am_i(pb::WhoAmIRequest {})
                    .await?
            }
            .into_inner();
            emit(json, &me, || render::whoami(&me))
        }
        Command::Health {
            node,
            wait,
            service,
        } => health(&node, wait, &service).await,
        Command::Show {
            node,
            id,
            reason,
            override_shielding,
        } => {
            let request = pb::GetRecordRequest {
                id,
                reason,
                override_shielding,
                ..Default::default()
            };
            let record = if node.is_gateway().await? {
                node.gateway().await?.get_record(request).await?
            } else {
                node.client().await?.get_record(request).await?
            }
            .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Search {
            node,
            surname,
            forename,
            dob,
            postcode,
            reason,
        } => {
            let request = pb::SearchRecordsRequest {
                surname,
                forename,
                date_of_birth: dob.map(wire_date),
                postcode,
                reason,
                ..Default::default()
            };
            let (matches, unanswered) = if node.is_gateway().await? {
                let found = node
                    .gateway()
                    .await?
                    .search_records(request)
                    .await?
                    .into_inner();
                (found.matches, found.unanswered)
            } else {
                let found = node
                    .client()
                    .await?
                    .search_records(request)
                    .await?
                    .into_inner();
                (found.matches, vec![])
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "matches": matches,
                        "unanswered": unanswered,
                    }))?
                );
            } else {
                print!("{}", render::matches_table(&matches));
                for missing in &unanswered {
                    println!(
                        "partial results: {} ({}) did not answer: {}",
                        missing.name, missing.code, missing.reason
                    );
                }
            }
            Ok(())
        }
        Command::Create { node, file } => {
            let request: pb::CreateRecordRequest = read_json(&file)?;
            let record = node
                .client()
                .await?
                .create_record(request)
                .await?
                .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Update {
            node,
            id,
            version,
            file,
        } => {
            let details: pb::RecordDetails = read_json(&file)?;
            let record = node
                .client()
                .await?
                .update_record(pb::UpdateRecordRequest {
                    id,
                    expected_version: version,
                    details: Some(details),
                })
                .await?
                .into_inner();
            emit(json, &record, || render::record(&record))
        }
        Command::Load {
            node,
            file,
            rejected,
        } => load::load(node.channel().await?, &file, rejected, json).await,
        Command::Transfer { action } => transfer_command(action, json).await,
        Command::Audit { action } => audit_command(action, json).await,
        Command::Notifications { node, after } => {
            let told = node
                .client()
                .await?
                .list_notifications(pb::ListNotificationsRequest {
                    after_id: after,
                    limit: 0,
                })
                .await?
                .into_inner();
            emit(json, &told, || render::notifications(&told.notifications))
        }
        Command::Seed { node, set } => seed(&node, set).await,
        Command::FederationDemo { endpoint, pki } => federation_demo(&endpoint, &pki).await,
    }
}

fn pki_command(action: PkiAction) -> Result<()> {
    match action {
        PkiAction::Init { dir } => {
            pki::open(&dir)?;
            println!("development CA in {}", dir.join("ca.pem").display());
        }
        PkiAction::Node { dir, code, hosts } => {
            let ca = pki::open(&dir)?;
            let path = pki::server(&ca, &dir, &format!("node-{code}"), &code, "node", &hosts)?;
            println!("{}", path.display());
            println!("\n# the node's entry in the access policy\n[[identity]]\norganisation = \"{code}\"\nunit = \"node\"\nrole = \"node\"\nauthority = \"{code}\"");
        }
        PkiAction::Gateway { dir, hosts } => {
            let ca = pki::open(&dir)?;
            let path = pki::server(
                &ca,
                &dir,
                "gateway",
                "ContactPoint gateway",
                "gateway",
                &hosts,
            )?;
            println!("{}", path.display());
            println!("\n# the gateway's entry in the access policy\n[[identity]]\norganisation = \"ContactPoint gateway\"\nunit = \"gateway\"\nrole = \"gateway\"");
        }
        PkiAction::User {
            dir,
            organisation,
            unit,
            name,
            schedule2,
            schedule3,
            management,
            operator,
            authority,
        } => {
            // The role first: nothing is issued for a user without one.
            let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
            let role = match (schedule2, schedule3, management, operator) {
                (Some(p), ..) => format!("role = \"national_partner\"\nschedule2 = {p}"),
                (_, Some(citation), ..) => format!(
                    "role = \"practitioner\"\nschedule3 = {}\nauthority = {}",
                    quote(&citation),
                    quote(&authority.unwrap_or_default())
                ),
                (_, _, true, _) => format!(
                    "role = \"management\"\nauthority = {}",
                    quote(&authority.unwrap_or_default())
                ),
                (_, _, _, true) => "role = \"operator\"".to_owned(),
                _ => bail!(
                    "name the user's role: --schedule2, --schedule3, --management or --operator"
                ),
            };
            let ca = pki::open(&dir)?;
            let file = format!("user-{}-{}", pki::stem(&organisation), pki::stem(&name));
            if dir.join(format!("{file}.pem")).exists() {
                bail!("{file}.pem exists already: revoke it first, or name the user differently");
            }
            let path = pki::issue(
                &ca,
                &dir,
                &file,
                &Subject {
                    organisation: &organisation,
                    unit: unit.as_deref(),
                    common_name: &name,
                    server_names: &[],
                    validity: Validity::Current,
                },
            )?;
            println!("{}", path.display());
            let who = format!(
                "organisation = {}\n{}common_name = {}",
                quote(&organisation),
                unit.map(|u| format!("unit = {}\n", quote(&u)))
                    .unwrap_or_default(),
                quote(&name)
            );
            let today = Utc::now().date_naive();
            println!(
                "\n# add to the access policy\n[[identity]]\n{who}\n{role}\n\n[[conditions]]\n{who}\ntraining_completed_on = {today}         # the dates they were met\ncriminal_record_check_on = {today}\nuser_agreement_signed_on = {today}"
            );
        }
        PkiAction::Crl { dir } => {
            let crl = pki::reissue_crl(&pki::open(&dir)?, &dir)?;
            println!("{} reissued", crl.display());
        }
        PkiAction::Revoke { dir, name } => {
            let crl = pki::revoke(&dir, &name)?;
            println!(
                "{name} revoked; the servers refuse it once they reread {} (SIGHUP)",
                crl.display()
            );
        }
    }
    Ok(())
}

async fn transfer_command(action: TransferAction, json: bool) -> Result<()> {
    match action {
        TransferAction::Start {
            gateway,
            id,
            to,
            wait,
        } => {
            let mut client = gateway.gateway().await?;
            let mut transfer = client
                .start_transfer(pb::StartTransferRequest {
                    id,
                    to_authority: to,
                })
                .await?
                .into_inner();
            if wait {
                transfer = wait_for_transfer(&mut client, &transfer.transfer_id).await?;
            }
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::Status {
            gateway,
            transfer_id,
        } => {
            let transfer = gateway
                .gateway()
                .await?
                .get_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::Cancel {
            gateway,
            transfer_id,
        } => {
            let transfer = gateway
                .gateway()
                .await?
                .cancel_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            emit(json, &transfer, || render::transfer(&transfer))
        }
        TransferAction::List { gateway, authority } => {
            let listed = gateway
                .gateway()
                .await?
                .list_transfers(pb::ListTransfersRequest { authority })
                .await?
                .into_inner();
            emit(json, &listed, || {
                let mut text = String::from("out:\n");
                listed
                    .outgoing
                    .iter()
                    .for_each(|t| text.push_str(&render::transfer(t)));
                text.push_str("in:\n");
                listed
                    .incoming
                    .iter()
                    .for_each(|t| text.push_str(&render::transfer(t)));
                text
            })
        }
    }
}

async fn audit_command(action: AuditAction, json: bool) -> Result<()> {
    match action {
        AuditAction::Who {
            gateway,
            id,
            reason,
        } => {
            let answer = gateway
                .gateway()
                .await?
                .subject_access(pb::SubjectAccessRequest { id, reason })
                .await?
                .into_inner();
            emit(json, &answer, || render::accesses(&answer))
        }
        AuditAction::Verify {
            config,
            witness,
            witness_cert,
        } => {
            let config = contactpoint_node::NodeConfig::load(Some(&config))?;
            let (client, connection) =
                tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls)
                    .await
                    .context("cannot connect to the node's database")?;
            tokio::spawn(connection);
            let node_key = contactpoint_mtls::public_key(&config.tls.cert)?;
            let mut report = contactpoint_node::audit::verify(&client, &node_key).await?;
            if let (Some(file), Some(cert)) = (witness, witness_cert) {
                let witnesses = std::fs::read_to_string(&file)?
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(contactpoint_proto::audit::Witness::from_line)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                let gateway_key = contactpoint_mtls::public_key(&cert)?;
                contactpoint_node::audit::check_witnesses(
                    &mut report,
                    &config.authority_code,
                    &witnesses,
                    &node_key,
                    &gateway_key,
                );
            }
            let summary = serde_json::json!({
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "countersigned": report.witnessed,
                "problems": report.problems,
            });
            emit(json, &summary, || {
                let mut text = format!(
                    "{} audit entries, {} signed checkpoints, {} countersigned by the gateway\n",
                    report.entries, report.checkpoints, report.witnessed
                );
                if report.is_intact() {
                    text.push_str("the audit log is intact\n");
                }
                for problem in &report.problems {
                    text.push_str(&format!("BROKEN: {problem}\n"));
                }
                text
            })?;
            if !report.is_intact() {
                bail!("the audit log of {} is broken", config.authority_code);
            }
            Ok(())
        }
    }
}

/// The demo's CA: node, gateway and client certificates (client-<organisation>.pem).
fn dev_ca(dir: &Path, nodes: &[String], clients: &[String], gateway: bool) -> Result<()> {
    let ca: DevCa = pki::open(dir)?;
    let local = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    for code in nodes {
        pki::server(&ca, dir, &format!("node-{code}"), code, "node", &local)?;
    }
    if gateway {
        pki::server(
            &ca,
            dir,
            "gateway",
            "ContactPoint gateway",
            "gateway",
            &local,
        )?;
    }
    for client in clients {
        let Some((organisation, name)) = client.split_once('/') else {
            bail!("--client {client:?}: expected ORGANISATION/NAME");
        };
        pki::issue(
            &ca,
            dir,
            &format!("client-{}", pki::stem(organisation)),
            &Subject {
                organisation,
                unit: None,
                common_name: name,
                server_names: &[],
                validity: Validity::Current,
            },
        )?;
    }
    println!("development CA in {}", dir.display());
    Ok(())
}

async fn health(node: &NodeArgs, wait: u64, service: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let attempt = async {
            let mut client =
                tonic_health::pb::health_client::HealthClient::new(node.channel().await?);
            let request = tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            };
            Ok::<_, anyhow::Error>(client.check(request).await?.into_inner().status)
        };
        match attempt.await {
            Ok(status)
                if status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 =>
            {
                println!("{} is serving", node.endpoint);
                return Ok(());
            }
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(status) => bail!("{} is not serving (status {status})", node.endpoint),
            Err(error) => {
                return Err(error.context(format!("{} did not become healthy", node.endpoint)))
            }
        }
    }
}

/// The date of birth the sample namesakes share: about four months ago.
fn shared_birthday() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(120)
}

fn wire_date(day: chrono::NaiveDate) -> pb::Date {
    sample::date(day.year(), day.month(), day.day())
}

/// Records one of three sets of fictional children at a node. Sets 0 and 1
/// each hold an Amelia Hartley born on the same day: namesakes in two regions.
async fn seed(node: &NodeArgs, set: usize) -> Result<()> {
    let mut client = node.client().await?;
    let today = Utc::now().date_naive();
    let years_ago = |years: i32| {
        today.with_year(today.year() - years).unwrap_or(today) - chrono::Duration::days(40)
    };
    let mut requests = Vec::new();
    match set {
        0 => {
            requests.push(sample::every_paragraph(wire_date(shared_birthday())));
            requests.push(sample::child_request(
                "Oliver",
                "Hartley",
                wire_date(years_ago(7)),
                "TS24 8AH",
            ));
        }
        1 => {
            requests.push(sample::child_request(
                "Amelia",
                "Hartley",
                wire_date(shared_birthday()),
                "TS1 2AA",
            ));
            requests.push(sample::child_request(
                "Noah James",
                "Bennett",
                wire_date(years_ago(12)),
                "TS5 6QA",
            ));
        }
        2 => {
            requests.push(sample::child_request(
                "Ella",
                "Hartley",
                wire_date(years_ago(10)),
                "TS10 1AB",
            ));
            requests.push(sample::child_request(
                "Jack",
                "Turner",
                wire_date(years_ago(4)),
                "TS11 6HT",
            ));
        }
        _ => bail!("--set is 0, 1 or 2"),
    }
    for request in requests {
        let record = client.create_record(request).await?.into_inner();
        let authority = record
            .responsible_authority
            .as_ref()
            .map_or("", |a| a.name.as_str());
        println!(
            "  {}  {:<26} recorded by {authority}",
            record.id,
            render::name(&record.name)
        );
    }
    Ok(())
}

/// Through the gateway: the NSPCC searches every region and looks a child
/// up; a police officer searches; an operator is refused.
async fn federation_demo(endpoint: &str, pki: &Path) -> Result<()> {
    let as_client = |stem: &str| NodeArgs {
        endpoint: endpoint.to_owned(),
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("client-{stem}.pem")),
        key: pki.join(format!("client-{stem}.key")),
        server_name: "localhost".into(),
    };
    let search = pb::SearchRecordsRequest {
        surname: "hartley".into(),
        date_of_birth: Some(wire_date(shared_birthday())),
        reason: "referral from a health visitor: finding the child's lead professional".into(),
        ..Default::default()
    };

    let mut nspcc = GatewayClient::new(as_client("nspcc").channel().await?);
    println!(
        "== As the NSPCC (Schedule 2 para 3), through the gateway: surname \"hartley\", born {}",
        shared_birthday()
    );
    let found = nspcc.search_records(search.clone()).await?.into_inner();
    print!("{}", render::matches(&found.matches));
    if found.unanswered.is_empty() {
        println!("  all {} authorities answered", found.authorities_asked);
    }
    for missing in &found.unanswered {
        println!(
            "  partial results: {} ({}) did not answer: {}",
            missing.name, missing.code, missing.reason
        );
    }

    let first = found.matches.first().context("the search found nothing")?;
    let authority = first
        .responsible_authority
        .as_ref()
        .map_or("", |a| a.name.as_str());
    println!(
        "\n== As the NSPCC: lookup {} (routed to {authority})",
        first.id
    );
    let record = nspcc
        .get_record(pb::GetRecordRequest {
            id: first.id.clone(),
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    print!("{}", render::record(&record));

    let mut police = GatewayClient::new(as_client("cleveland-police").channel().await?);
    let found = police.search_records(search.clone()).await?.into_inner();
    println!(
        "\n== As Cleveland Police (Schedule 3 para 3): the same search finds {} children",
        found.matches.len()
    );

    let mut operator = GatewayClient::new(as_client("contactpoint-operations").channel().await?);
    println!("\n== As an operator: the same search");
    match operator.search_records(search).await {
        Ok(_) => bail!("an operator was allowed to search"),
        Err(status) => println!("  refused: {:?}: {}", status.code(), status.message()),
    }

    let mut hartlepool = GatewayClient::new(as_client("e06000001").channel().await?);
    println!(
        "\n== Hartlepool's social worker: the child moves to Redcar and Cleveland; transfer {}",
        first.id
    );
    let transfer = hartlepool
        .start_transfer(pb::StartTransferRequest {
            id: first.id.clone(),
            to_authority: "E06000003".into(),
        })
        .await?
        .into_inner();
    let done = wait_for_transfer(&mut hartlepool, &transfer.transfer_id).await?;
    print!("{}", render::transfer(&done));
    let record = nspcc
        .get_record(pb::GetRecordRequest {
            id: first.id.clone(),
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let authority = record
        .responsible_authority
        .as_ref()
        .map_or("", |a| a.name.as_str());
    println!(
        "  the NSPCC's lookup of {} now reaches {authority}",
        record.id
    );
    let listed = hartlepool
        .list_transfers(pb::ListTransfersRequest {
            authority: "E06000001".into(),
        })
        .await?
        .into_inner();
    println!(
        "  Hartlepool's transfers: {} out, {} in",
        listed.outgoing.len(),
        listed.incoming.len()
    );

    let typo = mistype(&first.id);
    println!("\n== As the NSPCC: lookup with a mistyped identifier {typo}");
    match nspcc
        .get_record(pb::GetRecordRequest {
            id: typo,
            reason: "referral from a health visitor: finding the child's lead professional".into(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => bail!("a mistyped identifier was accepted"),
        Err(status) => println!("  refused: {:?}: {}", status.code(), status.message()),
    }
    Ok(())
}

/// Polls a transfer until it ends (or 30 seconds pass).
async fn wait_for_transfer(
    client: &mut GatewayClient<Channel>,
    transfer_id: &str,
) -> Result<pb::Transfer> {
    let ended = [
        pb::TransferState::Completed as i32,
        pb::TransferState::Cancelled as i32,
    ];
    for _ in 0..300 {
        let transfer = client
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer_id.to_owned(),
            })
            .await?
            .into_inner();
        if ended.contains(&transfer.state) {
            return Ok(transfer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("transfer {transfer_id} did not end within 30 seconds")
}

/// The identifier with two neighbouring serial digits swapped (or one changed).
fn mistype(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let i = chars.len() - 5;
    if chars[i] == chars[i - 1] {
        chars[i] = if chars[i] == '9' {
            '0'
        } else {
            char::from(chars[i] as u8 + 1)
        };
    } else {
        chars.swap(i, i - 1);
    }
    chars.into_iter().collect()
}
