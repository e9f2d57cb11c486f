//! The caller's identity, read from the peer certificate that the TLS
//! handshake has already verified. Nothing here verifies anything: an identity
//! exists only for a connection whose certificate chain passed.
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use x509_parser::prelude::{FromDer, X509Certificate};

/// Identities already read, by the certificate they were read from. A
/// connection presents the same certificate with every request, and parsing
/// it costs more than routing a lookup; the identity is a function of the
/// certificate's bytes alone (whether the certificate is trusted was settled
/// by the handshake).
static READ: LazyLock<Mutex<HashMap<Vec<u8>, Option<PeerIdentity>>>> =
    LazyLock::new(Mutex::default);
/// Certificates remembered at most; past this the memory starts again.
const READ_MAX: usize = 4096;

/// Who is calling, as the verified certificate names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject organisation (O): the organisation the caller acts for, for
    /// example an authority's GSS code or "NSPCC".
    pub organisation: String,
    /// Subject organisational unit (OU), if any: a team or role within it.
    pub unit: Option<String>,
    /// Subject common name (CN): the person or service.
    pub common_name: String,
}

impl PeerIdentity {
    /// Reads the identity from the leaf certificate of a request that arrived
    /// over mutual TLS. `None` if there is no verified peer certificate (which
    /// the node's listener never lets happen), or its subject does not name
    /// exactly one organisation (O), at most one unit (OU) and exactly one
    /// common name (CN): every audited caller is named, once, so that the
    /// policy cannot read a subject one way and an audit another.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Option<Self> {
        let certs = request.peer_certs()?;
        let leaf = certs.first()?;
        Self::from_der(leaf.as_ref())
    }

    /// Reads the identity from a DER certificate.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let read = || READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(identity) = read().get(der) {
            return identity.clone();
        }
        let identity = Self::parse(der);
        let mut read = read();
        if read.len() >= READ_MAX {
            read.clear();
        }
        read.insert(der.to_vec(), identity.clone());
        identity
    }

    fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let organisation = only_text(subject.iter_organization())??;
        let unit = only_text(subject.iter_organizational_unit())?;
        let common_name = only_text(subject.iter_common_name())??;
        Some(Self {
            organisation,
            unit,
            common_name,
        })
    }
}

/// The text of the one attribute of a kind: `Some(None)` if there is none,
/// `None` if there are two or more or it is not text.
fn only_text<'a>(
    mut attributes: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<Option<String>> {
    let Some(first) = attributes.next() else {
        return Some(None);
    };
    if attributes.next().is_some() {
        return None;
    }
    first.as_str().ok().map(|text| Some(text.to_owned()))
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.organisation)?;
        if let Some(unit) = &self.unit {
            write!(f, "/{unit}")?;
        }
        write!(f, "/{}", self.common_name)
    }
}
