//! Signatures with a certificate's own key (ECDSA P-256, SHA-256): a node
//! signs its audit checkpoints, the gateway countersigns them.
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};

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
