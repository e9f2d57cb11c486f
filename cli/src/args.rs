//! The command line itself: every command, its arguments and their help,
//! the exit codes and the examples `--help` shows. `main` dispatches;
//! nothing here talks to a server, but `NodeArgs`, the endpoint and TLS
//! files every command connects with.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use contactpoint_mtls::TlsFiles;
use contactpoint_proto::v1::{
    authority_node_client::AuthorityNodeClient, gateway_client::GatewayClient,
};
use tonic::transport::Channel;

pub(crate) const EXIT_CODES: &str =
    "Exit codes: 0 done; 1 failed (cannot connect, bad file...); 2 bad command line; \
3 invalid argument; 4 not found; 5 permission denied; 6 failed precondition (stale version, \
transfer state); 7 unavailable (try again); 8 partly done (rows rejected by load).";

pub(crate) const EXAMPLES: &str =
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
pub(crate) struct Cli {
    /// Print JSON (one document, or one per line) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        /// A client certificate as ORGANISATION/NAME, or ORGANISATION/UNIT/NAME
        /// (repeatable): client-<organisation>[-<unit>].pem.
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
        /// The gRPC service to ask about (e.g. contactpoint.v1.Gateway);
        /// by default the server as a whole, as probes and load balancers
        /// ask.
        #[arg(long, default_value = "")]
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
    /// Searches by surname and date of birth (or postcode, year of birth,
    /// forename), tolerating errors; each match says how its fields agreed.
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
        /// Only the year of birth is known (instead of --dob).
        #[arg(long, conflicts_with = "dob")]
        year: Option<u32>,
        /// Only the surname's exact key with the date of birth or postcode
        /// (by default a search is tolerant: misspellings, names that sound
        /// alike, nicknames, a day and month swapped, one digit wrong).
        #[arg(long)]
        exact: bool,
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
pub(crate) enum PkiAction {
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
pub(crate) enum TransferAction {
    /// Asks to move a record to the authority now responsible. Asked by the
    /// sending authority's management team, it starts at once; asked by
    /// anyone else, it waits for their consent (`cpctl transfer consent`).
    Start {
        #[command(flatten)]
        gateway: NodeArgs,
        id: String,
        /// GSS code of the authority becoming responsible.
        #[arg(long)]
        to: String,
        /// A merge across authorities: ID duplicates this record, held by
        /// --to, and is merged into it once there (--to's management team).
        #[arg(long, requires = "reason")]
        merge_into: Option<String>,
        /// Why the two records are one child (with --merge-into; audited).
        #[arg(long)]
        reason: Option<String>,
        /// Wait until the transfer ends.
        #[arg(long)]
        wait: bool,
    },
    /// Consents, as the sending authority's management team, to a transfer
    /// awaiting it, which then starts. To refuse, cancel it.
    Consent {
        #[command(flatten)]
        gateway: NodeArgs,
        transfer_id: String,
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
pub(crate) enum AuditAction {
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
    /// Writes a node's whole audit (its key history, entries and checkpoints)
    /// as JSON lines, to be verified elsewhere (`audit verify --export`). On
    /// the node's host: reads its database from its configuration. The
    /// export holds what the audit holds: keep it as the audit is kept.
    Export {
        /// The node's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Verifies a node's audit log end to end: on the node's host from its
    /// configuration (its database, trusting its audit_key), or offline from
    /// an export, trusting the audit key whose id is given.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["config", "export"])))]
    Verify {
        /// The node's TOML configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// An audit exported with `cpctl audit export`.
        #[arg(long, requires = "audit_key_id")]
        export: Option<PathBuf>,
        /// The id (hex SHA-256 of its public key) of an audit key the node is
        /// known to have had, as `cpctl pki node` and `audit verify --config`
        /// print it: the export's key history must hold it.
        #[arg(long)]
        audit_key_id: Option<String>,
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
pub(crate) struct NodeArgs {
    /// The server's address, for example https://localhost:7401 (a node) or :7400 (the gateway).
    #[arg(long, env = "CPCTL_ENDPOINT")]
    pub(crate) endpoint: String,
    /// The federation CA certificate.
    #[arg(long, env = "CPCTL_CA")]
    pub(crate) ca: PathBuf,
    /// Our client certificate.
    #[arg(long, env = "CPCTL_CERT")]
    pub(crate) cert: PathBuf,
    /// Our private key.
    #[arg(long, env = "CPCTL_KEY")]
    pub(crate) key: PathBuf,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub(crate) server_name: String,
}

impl NodeArgs {
    pub(crate) async fn channel(&self) -> Result<Channel> {
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

    pub(crate) async fn client(&self) -> Result<AuthorityNodeClient<Channel>> {
        Ok(AuthorityNodeClient::new(self.channel().await?))
    }

    pub(crate) async fn gateway(&self) -> Result<GatewayClient<Channel>> {
        Ok(GatewayClient::new(self.channel().await?))
    }

    /// Whether this is the gateway: its health service names the Gateway (a
    /// node's answers NotFound). Any other failure is the caller's to see,
    /// not a reason to take the server for a node.
    pub(crate) async fn is_gateway(&self) -> Result<bool> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel().await?);
        let asked = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "contactpoint.v1.Gateway".into(),
            })
            .await;
        match asked {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(status.into()),
        }
    }
}
