//! Mutual TLS for every listener and every client in the federation.
//!
//! Owns: loading PEM certificates, keys and CRLs; building the rustls server
//! configuration (client certificates required and verified against the
//! federation's CA and its revocation lists); accepting TLS connections for a
//! tonic server; the tonic client configuration; and reading the caller's
//! identity from the verified peer certificate after the handshake. With the
//! `dev-ca` feature it also makes a development certificate authority.
//!
//! Verification is never optional here: there is no constructor for a server
//! that accepts a client without a certificate.
#![forbid(unsafe_code)]

mod config;
#[cfg(feature = "dev-ca")]
pub mod devca;
mod identity;
mod incoming;
mod signing;

pub use config::{
    client_tls, install_crypto_provider, private_key_pkcs8, public_key, server_config, ServerTls,
    TlsError, TlsFiles,
};
pub use identity::PeerIdentity;
pub use incoming::accept_tls;
pub use signing::{
    check_key_history, key_id, key_link_message, verify_signature, KeyLink, KeySigner,
};
