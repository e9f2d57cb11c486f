//! The directory of authorities' nodes and how the gateway calls them: over
//! mutual TLS with the gateway's own certificate, saying on whose behalf.
use std::collections::BTreeMap;
use std::time::Duration;

use contactpoint_mtls::{PeerIdentity, TlsFiles};
use contactpoint_policy::{forwarded, Role};
use contactpoint_proto::v1::authority_node_client::AuthorityNodeClient;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::config::NodeEntry;

/// One authority's node.
#[derive(Debug, Clone)]
pub struct Node {
    pub code: String,
    pub name: String,
    channel: Channel,
}

impl Node {
    /// A client for this node. Channels are shared and multiplexed; cloning is cheap.
    pub fn client(&self) -> AuthorityNodeClient<Channel> {
        AuthorityNodeClient::new(self.channel())
    }

    /// The channel itself, for calls made without the generated client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Every node, by GSS code.
#[derive(Debug, Clone)]
pub struct Directory {
    nodes: BTreeMap<String, Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Tls(#[from] contactpoint_mtls::TlsError),
    #[error("node {code}: {source}")]
    Endpoint {
        code: String,
        source: tonic::transport::Error,
    },
}

impl Directory {
    /// Channels to every node, connected lazily: a node that is down at start
    /// is tried again on each call.
    pub fn new(entries: &[NodeEntry], tls: &TlsFiles) -> Result<Self, DirectoryError> {
        let mut nodes = BTreeMap::new();
        for entry in entries {
            let fail = |source| DirectoryError::Endpoint {
                code: entry.code.clone(),
                source,
            };
            let channel = Endpoint::from_shared(entry.endpoint.clone())
                .map_err(fail)?
                .tls_config(contactpoint_mtls::client_tls(tls, &entry.server_name())?)
                .map_err(fail)?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true)
                .connect_lazy();
            nodes.insert(
                entry.code.clone(),
                Node {
                    code: entry.code.clone(),
                    name: entry.name.clone(),
                    channel,
                },
            );
        }
        Ok(Self { nodes })
    }

    pub fn get(&self, code: &str) -> Option<&Node> {
        self.nodes.get(code)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A request to a node on behalf of `caller` acting as `role`.
pub fn on_behalf<T>(
    message: T,
    caller: &PeerIdentity,
    role: &Role,
    timeout: Duration,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let metadata = request.metadata_mut();
    metadata.insert_bin(
        forwarded::CALLER_HEADER,
        BinaryMetadataValue::from_bytes(&forwarded::encode_identity(caller)),
    );
    if let Ok(value) = AsciiMetadataValue::try_from(role.to_wire()) {
        metadata.insert(forwarded::ROLE_HEADER, value);
    }
    request
}
