//! `cpctl pki`: a development certificate authority in a folder. It keeps
//! `ca.pem`/`ca.key`, each issued certificate as `<name>.pem`/`<name>.key`,
//! a register of serial numbers (`issued.tsv`) and, once something is
//! revoked, `revoked.tsv` and the CRL `crl.pem` that servers name in their
//! `tls.crls` and reread on SIGHUP. The tests use the same `DevCa`.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use contactpoint_mtls::devca::{DevCa, Subject, Validity};

use crate::args::PkiAction;

/// Opens the CA in `dir`, making it first if there is none, and the
/// federation's matching key beside it.
pub fn open(dir: &Path) -> Result<DevCa> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    write_matching_key(dir)?;
    if cert.exists() && key.exists() {
        let ca = DevCa::load(
            &std::fs::read_to_string(&cert)?,
            &std::fs::read_to_string(&key)?,
        )?;
        // The servers name crl.pem: it must be there (a CA made before it was).
        if !dir.join("crl.pem").exists() {
            reissue_crl(&ca, dir)?;
        }
        return Ok(ca);
    }
    let ca = DevCa::generate("ContactPoint development CA")?;
    write(dir, "ca.pem", ca.cert_pem())?;
    write(dir, "ca.key", ca.key_pem())?;
    // An empty CRL from the start, so servers can name it in tls.crls.
    write(dir, "crl.pem", &ca.revocation_list(&[])?)?;
    Ok(ca)
}

/// The federation's matching key beside the CA (`matching.key`, for the
/// nodes' and the gateway's `matching_key`), made if there is none.
pub fn write_matching_key(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("matching.key");
    if !path.exists() {
        let key = contactpoint_matching::blocking::MatchingKeys::generate("dev-1")
            .map_err(anyhow::Error::msg)?;
        write(dir, "matching.key", &key)?;
    }
    Ok(path)
}

/// A node's audit signing key beside the CA (`audit-<code>.key`, for the
/// node's `audit_key`), made if there is none: never overwritten, since the
/// audit's key history needs the old key to endorse a new one.
pub fn write_audit_key(dir: &Path, code: &str) -> Result<PathBuf> {
    let name = format!("audit-{code}.key");
    let path = dir.join(&name);
    if !path.exists() {
        write(dir, &name, &contactpoint_mtls::devca::generate_key_pem()?)?;
    }
    Ok(path)
}

/// Writes a file; private keys (`*.key`) readable by their owner only.
fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A file name from an organisation or person: lower case, hyphens.
pub fn stem(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Issues a certificate as `<name>.pem` and `<name>.key` and registers its serial.
pub fn issue(ca: &DevCa, dir: &Path, name: &str, subject: &Subject<'_>) -> Result<PathBuf> {
    let issued = ca.issue(subject)?;
    write(dir, &format!("{name}.pem"), &issued.cert_pem)?;
    write(dir, &format!("{name}.key"), &issued.key_pem)?;
    let register = dir.join("issued.tsv");
    let mut text = std::fs::read_to_string(&register).unwrap_or_default();
    text.push_str(&format!("{}\t{name}\n", issued.serial));
    std::fs::write(&register, text)?;
    Ok(dir.join(format!("{name}.pem")))
}

/// Revokes the certificate issued as `name`, and writes the CRL of every
/// certificate revoked so far to `crl.pem`.
pub fn revoke(dir: &Path, name: &str) -> Result<PathBuf> {
    let ca = open(dir)?;
    let register = std::fs::read_to_string(dir.join("issued.tsv")).unwrap_or_default();
    let serials: Vec<u64> = register
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, issued)| *issued == name)
        .filter_map(|(serial, _)| serial.parse().ok())
        .collect();
    if serials.is_empty() {
        bail!(
            "no certificate named {name:?} was issued from {}",
            dir.display()
        );
    }
    let revoked_path = dir.join("revoked.tsv");
    let mut revoked = std::fs::read_to_string(&revoked_path).unwrap_or_default();
    for serial in &serials {
        revoked.push_str(&format!("{serial}\t{name}\n"));
    }
    std::fs::write(&revoked_path, &revoked)?;
    reissue_crl(&ca, dir)
}

/// Writes `crl.pem` anew with every revoked serial (a CRL is good for 30
/// days: reissue it before then, and send the servers SIGHUP).
pub fn reissue_crl(ca: &DevCa, dir: &Path) -> Result<PathBuf> {
    let revoked = std::fs::read_to_string(dir.join("revoked.tsv")).unwrap_or_default();
    let all: Vec<u64> = revoked
        .lines()
        .filter_map(|line| line.split('\t').next()?.parse().ok())
        .collect();
    write(dir, "crl.pem", &ca.revocation_list(&all)?)?;
    Ok(dir.join("crl.pem"))
}

/// A server certificate for a node or the gateway, valid for `hosts`.
pub fn server(
    ca: &DevCa,
    dir: &Path,
    name: &str,
    organisation: &str,
    unit: &str,
    hosts: &[String],
) -> Result<PathBuf> {
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    issue(
        ca,
        dir,
        name,
        &Subject {
            organisation,
            unit: Some(unit),
            common_name: name,
            server_names: &hosts,
            validity: Validity::Current,
        },
    )
}

pub(crate) fn pki_command(action: PkiAction) -> Result<()> {
    match action {
        PkiAction::Init { dir } => {
            open(&dir)?;
            println!("development CA in {}", dir.join("ca.pem").display());
        }
        PkiAction::Node { dir, code, hosts } => {
            let ca = open(&dir)?;
            let path = server(&ca, &dir, &format!("node-{code}"), &code, "node", &hosts)?;
            println!("{}", path.display());
            let audit_key = write_audit_key(&dir, &code)?;
            let public =
                contactpoint_node::audit::public_key_of(&audit_key).map_err(anyhow::Error::msg)?;
            println!("{}", audit_key.display());
            println!(
                "# its audit key id (cpctl audit verify --export F --audit-key-id ID): {}",
                contactpoint_proto::audit::hex(&contactpoint_mtls::key_id(&public))
            );
            println!("\n# the node's entry in the access policy\n[[identity]]\norganisation = \"{code}\"\nunit = \"node\"\nrole = \"node\"\nauthority = \"{code}\"");
        }
        PkiAction::Gateway { dir, hosts } => {
            let ca = open(&dir)?;
            let path = server(
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
            let ca = open(&dir)?;
            let file = format!("user-{}-{}", stem(&organisation), stem(&name));
            if dir.join(format!("{file}.pem")).exists() {
                bail!("{file}.pem exists already: revoke it first, or name the user differently");
            }
            let path = issue(
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
            let crl = reissue_crl(&open(&dir)?, &dir)?;
            println!("{} reissued", crl.display());
        }
        PkiAction::Revoke { dir, name } => {
            let crl = revoke(&dir, &name)?;
            println!(
                "{name} revoked; the servers refuse it once they reread {} (SIGHUP)",
                crl.display()
            );
        }
    }
    Ok(())
}

/// The demo's CA: node, gateway and client certificates
/// (client-<organisation>[-<unit>].pem).
pub(crate) fn dev_ca(
    dir: &Path,
    nodes: &[String],
    clients: &[String],
    gateway: bool,
) -> Result<()> {
    let ca: DevCa = open(dir)?;
    // A CRL is good for 30 days and the servers refuse every caller once it
    // lapses: each run of the demo starts with a fresh one.
    reissue_crl(&ca, dir)?;
    let local = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    for code in nodes {
        server(&ca, dir, &format!("node-{code}"), code, "node", &local)?;
        write_audit_key(dir, code)?;
    }
    if gateway {
        server(
            &ca,
            dir,
            "gateway",
            "ContactPoint gateway",
            "gateway",
            &local,
        )?;
    }
    for client in clients {
        let (organisation, unit, name) = match client.splitn(3, '/').collect::<Vec<_>>()[..] {
            [organisation, name] => (organisation, None, name),
            [organisation, unit, name] => (organisation, Some(unit), name),
            _ => bail!("--client {client:?}: expected ORGANISATION/NAME or ORGANISATION/UNIT/NAME"),
        };
        let file = match unit {
            Some(unit) => format!("client-{}-{}", stem(organisation), stem(unit)),
            None => format!("client-{}", stem(organisation)),
        };
        issue(
            &ca,
            dir,
            &file,
            &Subject {
                organisation,
                unit,
                common_name: name,
                server_names: &[],
                validity: Validity::Current,
            },
        )?;
    }
    println!("development CA in {}", dir.display());
    Ok(())
}
