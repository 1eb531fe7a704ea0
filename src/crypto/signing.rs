//! Ed25519 for signed audit checkpoints (AUD-04). The private key lives only as PKCS#8,
//! sealed in the database; verifying needs just the 32-byte public key.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A fresh key pair as PKCS#8 (to be sealed before it is stored).
pub fn generate_pkcs8() -> Result<Zeroizing<Vec<u8>>> {
    let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| Error::internal("cannot generate a signing key"))?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(Self)
            .map_err(|_| Error::internal("the stored audit signing key is not a valid Ed25519 key"))
    }
    pub fn public(&self) -> Vec<u8> {
        self.0.public_key().as_ref().to_vec()
    }
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.0.sign(msg).as_ref().to_vec()
    }
}

pub fn verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(msg, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let k = SigningKey::from_pkcs8(&generate_pkcs8().unwrap()).unwrap();
        let other = SigningKey::from_pkcs8(&generate_pkcs8().unwrap()).unwrap();
        let sig = k.sign(b"a\n1\n");
        assert!(verify(&k.public(), b"a\n1\n", &sig));
        assert!(!verify(&k.public(), b"a\n2\n", &sig));
        assert!(!verify(&other.public(), b"a\n1\n", &sig));
    }
}
