//! Signatures (ECDSA P-256, SHA-256): a node signs its audit checkpoints
//! with its audit key, the gateway countersigns them with its certificate's
//! key; and the history of a node's audit keys, each key linked to the one
//! before it by both, so that every checkpoint a node ever signed still
//! verifies after its key is rotated, and no key can be slipped into the
//! history by someone holding neither.
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use std::path::Path;

/// Signs with a private key. Never prints the key.
pub struct KeySigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySigner")
    }
}

impl KeySigner {
    /// From a PKCS#8 DER private key; only ECDSA P-256 keys are supported.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng).map_err(|_| {
                "the key must be an ECDSA P-256 key in PKCS#8 form to sign audit checkpoints"
                    .to_owned()
            })?;
        Ok(Self { key, rng })
    }

    /// From a PKCS#8 PEM key file.
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let der = crate::private_key_pkcs8(path).map_err(|error| error.to_string())?;
        Self::from_pkcs8(&der).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// The public key: the uncompressed point, as a certificate's
    /// SubjectPublicKeyInfo carries it.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// An ASN.1 DER signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        self.key
            .sign(&self.rng, message)
            .ok()
            .map(|signature| signature.as_ref().to_vec())
    }
}

/// Whether `signature` is `message` signed by the key whose public part is
/// `public_key` (the certificate's SubjectPublicKeyInfo key bytes).
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(message, signature)
        .is_ok()
}

/// A public key's id: SHA-256 of its bytes.
pub fn key_id(public_key: &[u8]) -> Vec<u8> {
    digest(&SHA256, public_key).as_ref().to_vec()
}

/// The message both keys of a link sign: the key before, then the key after.
pub fn key_link_message(previous: &[u8], next: &[u8]) -> Vec<u8> {
    let mut message = b"contactpoint audit key link v1\n".to_vec();
    for part in [previous, next] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part);
    }
    message
}

/// One key of an audit key history, oldest first. Every key but the first
/// carries the link from the key before it: `endorsement`, by the key
/// before, and `acceptance`, by this key, both over
/// [`key_link_message`]`(before, this)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLink {
    pub public_key: Vec<u8>,
    pub endorsement: Option<Vec<u8>>,
    pub acceptance: Option<Vec<u8>>,
}

/// Checks a key history: the first key unlinked, every later one linked to
/// the one before by both signatures, and (if `anchors` names any) one of
/// the keys an anchor. As every link is signed by both its keys, one trusted
/// key anywhere in the history vouches for all of it: a key put in front of
/// it lacks its acceptance, one put after it its endorsement.
pub fn check_key_history(keys: &[KeyLink], anchors: &[Vec<u8>]) -> Result<(), String> {
    let Some(first) = keys.first() else {
        return Err("the audit key history is empty".into());
    };
    if first.endorsement.is_some() || first.acceptance.is_some() {
        return Err("the first key of the audit key history claims a key before it".into());
    }
    for (index, pair) in keys.windows(2).enumerate() {
        let (before, key) = (&pair[0], &pair[1]);
        let message = key_link_message(&before.public_key, &key.public_key);
        let (Some(endorsement), Some(acceptance)) = (&key.endorsement, &key.acceptance) else {
            return Err(format!(
                "key {} of the audit key history is not linked to the key before it",
                index + 2
            ));
        };
        if !verify_signature(&before.public_key, &message, endorsement) {
            return Err(format!(
                "key {} of the audit key history is not endorsed by the key before it",
                index + 2
            ));
        }
        if !verify_signature(&key.public_key, &message, acceptance) {
            return Err(format!(
                "key {} of the audit key history did not accept its link",
                index + 2
            ));
        }
    }
    if !anchors.is_empty() && !keys.iter().any(|key| anchors.contains(&key.public_key)) {
        return Err(
            "the audit key history holds none of the keys trusted for this node: it was replaced"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> KeySigner {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        KeySigner::from_pkcs8(der.as_ref()).unwrap()
    }

    fn link(before: &KeySigner, key: &KeySigner) -> KeyLink {
        let message = key_link_message(&before.public_key(), &key.public_key());
        KeyLink {
            public_key: key.public_key(),
            endorsement: before.sign(&message),
            acceptance: key.sign(&message),
        }
    }

    fn first(key: &KeySigner) -> KeyLink {
        KeyLink {
            public_key: key.public_key(),
            endorsement: None,
            acceptance: None,
        }
    }

    #[test]
    fn a_key_history_needs_both_signatures_of_every_link_and_an_anchor() {
        let (a, b, c, x) = (signer(), signer(), signer(), signer());
        let history = vec![first(&a), link(&a, &b), link(&b, &c)];
        for anchor in [&a, &b, &c] {
            assert_eq!(check_key_history(&history, &[anchor.public_key()]), Ok(()));
        }
        assert_eq!(check_key_history(&history, &[]), Ok(()));
        let replaced = check_key_history(&history, &[x.public_key()]).unwrap_err();
        assert!(replaced.contains("replaced"), "{replaced}");

        // A key slipped in after B, endorsed by nobody it follows.
        let mut slipped = history.clone();
        slipped.push(KeyLink {
            endorsement: x.sign(&key_link_message(&c.public_key(), &x.public_key())),
            ..link(&c, &x)
        });
        assert!(check_key_history(&slipped, &[a.public_key()])
            .unwrap_err()
            .contains("key 4 of the audit key history is not endorsed"));
        // One put in front of A, which A never accepted.
        let mut before = vec![first(&x), link(&x, &a)];
        before[1].acceptance = x.sign(&key_link_message(&x.public_key(), &a.public_key()));
        assert!(check_key_history(&before, &[a.public_key()])
            .unwrap_err()
            .contains("did not accept"));
        assert!(check_key_history(&[], &[]).is_err());
        assert!(check_key_history(&[link(&a, &b)], &[]).is_err());
    }
}
