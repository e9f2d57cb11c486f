//! A development certificate authority, for the local federation and tests.
//! Not for production: a real deployment's certificates come from the
//! federation's own CA.
use chrono::{Datelike, Duration, NaiveDate, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use std::sync::atomic::{AtomicU64, Ordering};

pub use rcgen::Error;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The serial number, for revocation.
    pub serial: u64,
}

/// Whether a certificate is valid now or already expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday for five years.
    Current,
    /// Expired yesterday.
    Expired,
}

/// A subject attribute a test certificate carries twice (see
/// [`DevCa::issue_repeating`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeated {
    Organisation,
    Unit,
    CommonName,
}

/// What a leaf certificate says about its holder.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub organisation: &'a str,
    pub unit: Option<&'a str>,
    pub common_name: &'a str,
    /// DNS names (and IP addresses) a server answers to; empty for a client.
    pub server_names: &'a [&'a str],
    pub validity: Validity,
}

/// The CA: its certificate (PEM) and the issuer that signs with its key.
pub struct DevCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    next_serial: AtomicU64,
}

fn to_offset(date: NaiveDate) -> time::OffsetDateTime {
    rcgen::date_time_ymd(date.year(), date.month() as u8, date.day() as u8)
}

/// A new ECDSA P-256 private key in PKCS#8 PEM, for a key that certifies
/// nothing (a node's audit signing key).
pub fn generate_key_pem() -> Result<String, Error> {
    Ok(KeyPair::generate()?.serialize_pem())
}

impl DevCa {
    /// A new CA named `name`.
    pub fn generate(name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ContactPoint development");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let today = Utc::now().date_naive();
        params.not_before = to_offset(today - Duration::days(2));
        params.not_after = to_offset(today + Duration::days(3650));
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            next_serial: AtomicU64::new(first_serial()),
        })
    }

    /// Loads a CA made earlier by [`DevCa::generate`].
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let key_copy = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_copy.serialize_pem(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            next_serial: AtomicU64::new(first_serial()),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a leaf certificate for a server (if it has server names) and client.
    pub fn issue(&self, subject: &Subject<'_>) -> Result<Issued, Error> {
        self.issue_with(subject, None)
    }

    /// As [`DevCa::issue`], the subject naming `repeated` twice (the second
    /// time as "<value> 2"), as no certificate of the federation should: for
    /// tests that servers refuse such a subject.
    pub fn issue_repeating(
        &self,
        subject: &Subject<'_>,
        repeated: Repeated,
    ) -> Result<Issued, Error> {
        self.issue_with(subject, Some(repeated))
    }

    fn issue_with(
        &self,
        subject: &Subject<'_>,
        repeated: Option<Repeated>,
    ) -> Result<Issued, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, subject.organisation);
        if let Some(unit) = subject.unit {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, unit);
        }
        params
            .distinguished_name
            .push(DnType::CommonName, subject.common_name);
        if let Some(repeated) = repeated {
            // The same attribute by its OID: rcgen keeps one value per DnType.
            let (oid, value) = match repeated {
                Repeated::Organisation => (10, subject.organisation),
                Repeated::Unit => (11, subject.unit.unwrap_or("unit")),
                Repeated::CommonName => (3, subject.common_name),
            };
            params.distinguished_name.push(
                DnType::CustomDnType(vec![2, 5, 4, oid]),
                format!("{value} 2"),
            );
        }
        for name in subject.server_names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into()?),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if !subject.server_names.is_empty() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let today = Utc::now().date_naive();
        let (from, to) = match subject.validity {
            Validity::Current => (today - Duration::days(1), today + Duration::days(5 * 365)),
            Validity::Expired => (today - Duration::days(730), today - Duration::days(1)),
        };
        params.not_before = to_offset(from);
        params.not_after = to_offset(to);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }

    /// A CRL revoking the given serial numbers, PEM.
    pub fn revocation_list(&self, serials: &[u64]) -> Result<String, Error> {
        let today = Utc::now().date_naive();
        let params = CertificateRevocationListParams {
            this_update: to_offset(today - Duration::days(1)),
            next_update: to_offset(today + Duration::days(30)),
            crl_number: SerialNumber::from(first_serial()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: to_offset(today - Duration::days(1)),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer)?.pem()
    }
}

/// Serial numbers start from the clock so certificates issued by one CA in
/// different runs do not collide.
fn first_serial() -> u64 {
    u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1)
}
