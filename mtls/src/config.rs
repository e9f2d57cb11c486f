//! Building rustls and tonic TLS configurations from the PEM files named in a
//! server's configuration.
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PEM files a server or client needs for mutual TLS.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation's CA certificate(s): peers must present a certificate it issued.
    pub ca: PathBuf,
    /// This process's own certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
    /// Certificate revocation lists from the CA; a revoked peer is refused at
    /// the handshake. Default: none.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// What can go wrong while building a TLS configuration. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {source}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("CA certificate in {path} is not usable: {source}")]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("certificate and key do not make a usable identity: {0}")]
    Identity(rustls::Error),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Installs the one crypto provider (ring) for the whole process. Idempotent.
pub fn install_crypto_provider() {
    // A second install (another server in the same test process) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            what: "certificates",
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: path.into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        what: "private key",
        path: path.into(),
        source,
    })
}

fn read_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let found = CertificateRevocationListDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Pem {
                what: "CRLs",
                path: path.clone(),
                source,
            })?;
        crls.extend(found);
    }
    Ok(crls)
}

/// The PKCS#8 DER form of the private key in `path` (for signing with it).
pub fn private_key_pkcs8(path: &Path) -> Result<Vec<u8>, TlsError> {
    match read_key(path)? {
        PrivateKeyDer::Pkcs8(key) => Ok(key.secret_pkcs8_der().to_vec()),
        _ => Err(TlsError::Empty {
            what: "PKCS#8 private key",
            path: path.into(),
        }),
    }
}

/// The public key of the first certificate in `path` (the SubjectPublicKeyInfo
/// key bytes), for checking what its holder signed.
pub fn public_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let cert = read_certs(path)?.remove(0);
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| TlsError::Empty {
            what: "parsable certificate",
            path: path.into(),
        })?;
    Ok(parsed.public_key().subject_public_key.data.to_vec())
}

/// The server side: requires every client to present a certificate issued by
/// `files.ca` and not revoked by `files.crls`; offers only HTTP/2.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    install_crypto_provider();
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.ca)? {
        roots.add(ca).map_err(|source| TlsError::BadCa {
            path: files.ca.clone(),
            source,
        })?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .with_crls(read_crls(&files.crls)?)
        // A CRL past its nextUpdate no longer vouches for anyone.
        .enforce_revocation_expiration()
        .build()?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&files.cert)?, read_key(&files.key)?)
        .map_err(TlsError::Identity)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A server's TLS configuration that can be read again from its files while
/// the server runs (on SIGHUP): a new CRL refuses a revoked client from the
/// next handshake on. Connections already open keep the configuration they
/// were accepted with. A reload that fails keeps the configuration in force.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: std::sync::RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn open(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            files: files.clone(),
            current: std::sync::RwLock::new(server_config(files)?),
        })
    }

    /// The configuration new connections are accepted with.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the CA, certificate, key and CRLs again.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }
}

/// The client side, for tonic channels: trusts only `files.ca`, presents
/// `files.cert`, and checks that the server's certificate names `server_name`.
pub fn client_tls(
    files: &TlsFiles,
    server_name: &str,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    install_crypto_provider();
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Io {
            path: path.into(),
            source,
        })
    };
    Ok(tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(&files.ca)?))
        .identity(tonic::transport::Identity::from_pem(
            read(&files.cert)?,
            read(&files.key)?,
        ))
        .domain_name(server_name))
}
