//! The bytes a node's audit checkpoint and the gateway's countersignature
//! sign, how the chain links its entries, and the witness file the gateway
//! exports for a node's verifier. Both sides build them here, so they
//! cannot drift apart.
use ring::digest::{digest, SHA256};

/// The most entries' digests a node sends in one proof that its head
/// extends the one the gateway countersigned last (32 bytes each: 512 KiB,
/// under the 1 MiB message bound); past them it signs the head they reach.
pub const MAX_PROOF_ENTRIES: i64 = 16_384;

/// The chain's link: SHA-256 over the previous entry's hash and `next`, the
/// entry's canonical form (entries written before migration V19) or its
/// digest, SHA-256 of that form (from V19, so that a proof needs no form).
pub fn link(previous: &[u8], next: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(previous.len() + next.len());
    input.extend_from_slice(previous);
    input.extend_from_slice(next);
    digest(&SHA256, &input).as_ref().to_vec()
}

/// SHA-256 of an entry's canonical form: what a V19 entry links.
pub fn form_digest(canonical: &[u8]) -> Vec<u8> {
    digest(&SHA256, canonical).as_ref().to_vec()
}

/// Whether linking `digests` one after another onto `from` (a head's hash)
/// reaches `to`: the chain whose head is `to` extends the one whose head
/// was `from`.
pub fn extends(from: &[u8], digests: &[Vec<u8>], to: &[u8]) -> bool {
    digests
        .iter()
        .fold(from.to_vec(), |hash, digest| link(&hash, digest))
        == to
}

/// The message a node signs for a checkpoint of its audit chain's head.
pub fn checkpoint_message(last_event_id: i64, head: &[u8]) -> Vec<u8> {
    let mut message = b"contactpoint audit checkpoint v1\n".to_vec();
    message.extend_from_slice(&last_event_id.to_be_bytes());
    message.extend_from_slice(head);
    message
}

/// The message the gateway signs when it witnesses a node's checkpoint: the
/// authority, the checkpoint, and the node's own signature of it.
pub fn witness_message(
    authority_code: &str,
    last_event_id: i64,
    head: &[u8],
    node_signature: &[u8],
) -> Vec<u8> {
    let mut message = b"contactpoint audit witness v1\n".to_vec();
    for part in [authority_code.as_bytes(), head, node_signature] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part);
    }
    message.extend_from_slice(&last_event_id.to_be_bytes());
    message
}

/// A checkpoint the gateway has countersigned: one line of the witness file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub authority_code: String,
    pub last_event_id: i64,
    pub head_hash: Vec<u8>,
    pub node_signature: Vec<u8>,
    pub gateway_signature: Vec<u8>,
    /// RFC 3339.
    pub witnessed_at: String,
}

impl Witness {
    /// One JSON line.
    pub fn to_line(&self) -> String {
        serde_json::json!({
            "authority_code": self.authority_code,
            "last_event_id": self.last_event_id,
            "head_hash": hex(&self.head_hash),
            "node_signature": hex(&self.node_signature),
            "gateway_signature": hex(&self.gateway_signature),
            "witnessed_at": self.witnessed_at,
        })
        .to_string()
    }

    /// Reads a line [`Witness::to_line`] wrote.
    pub fn from_line(line: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
        let text = |field: &str| {
            value[field]
                .as_str()
                .map(str::to_owned)
                .ok_or(format!("{field} is missing"))
        };
        let bytes = |field: &str| unhex(&text(field)?).ok_or(format!("{field} is not hex"));
        Ok(Self {
            authority_code: text("authority_code")?,
            last_event_id: value["last_event_id"]
                .as_i64()
                .ok_or("last_event_id is missing")?,
            head_hash: bytes("head_hash")?,
            node_signature: bytes("node_signature")?,
            gateway_signature: bytes("gateway_signature")?,
            witnessed_at: text("witnessed_at")?,
        })
    }
}

/// Bytes as lowercase hex, as the witness file and an audit export write them.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Hex back into bytes.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_extends_its_earlier_head_and_no_other() {
        let digests: Vec<Vec<u8>> = ["a", "b", "c"]
            .iter()
            .map(|f| form_digest(f.as_bytes()))
            .collect();
        let start = link(b"", b"first");
        let head = extends_to(&start, &digests);
        assert!(extends(&start, &digests, &head));
        assert!(extends(&head, &[], &head));
        assert!(!extends(&link(b"", b"other"), &digests, &head));
        assert!(!extends(&start, &digests[1..], &head));
        let mut swapped = digests.clone();
        swapped.swap(0, 1);
        assert!(!extends(&start, &swapped, &head));
    }

    fn extends_to(from: &[u8], digests: &[Vec<u8>]) -> Vec<u8> {
        digests
            .iter()
            .fold(from.to_vec(), |hash, digest| link(&hash, digest))
    }

    #[test]
    fn a_witness_line_reads_back() {
        let witness = Witness {
            authority_code: "E06000001".into(),
            last_event_id: 42,
            head_hash: vec![0, 1, 254, 255],
            node_signature: vec![7; 70],
            gateway_signature: vec![9; 71],
            witnessed_at: "2026-11-23T12:00:00Z".into(),
        };
        assert_eq!(Witness::from_line(&witness.to_line()), Ok(witness));
        assert!(Witness::from_line("{}").is_err());
    }
}
