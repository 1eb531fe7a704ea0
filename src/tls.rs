//! Built-in TLS: a self-signed P-256 certificate generated on first start, operator
//! certificates validated on import, and the rustls server configuration (TLS 1.2/1.3 only).

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::clock::Timestamp;
use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::ids::CertificateId;

/// Validity of the generated certificate. Agents pin its fingerprint, so it is long-lived;
/// the scheduler warns well before it ends.
const SELF_SIGNED_DAYS: i64 = 5 * 365;

/// A certificate chain with its private key, as PEM, plus what the appliance shows about it.
pub struct CertMaterial {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
    pub fingerprint: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// The pin agents use: `sha256:` + lowercase hex SHA-256 of the leaf certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(der))
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider (for reqwest and others); idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn to_offset(t: Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.seconds()).map_err(Error::internal)
}

pub fn generate_self_signed(hostname: &str, now: Timestamp) -> Result<CertMaterial> {
    let mut names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| {
        Error::startup(format!(
            "cannot use hostname {hostname:?} in a certificate: {e}"
        ))
    })?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Hourglass appliance");
    let not_before = now.plus_secs(-3600);
    let not_after = now.plus_secs(SELF_SIGNED_DAYS * 86_400);
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::internal)?;
    let cert = params.self_signed(&key).map_err(Error::internal)?;
    Ok(CertMaterial {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
        fingerprint: fingerprint(cert.der()),
        not_before: Timestamp::from_millis(not_before.seconds() * 1000),
        not_after: Timestamp::from_millis(not_after.seconds() * 1000),
    })
}

/// Parses and checks an operator's certificate chain and key: readable PEM, a key that
/// belongs to the leaf certificate, and a leaf that is valid now.
pub fn parse_pair(cert_pem: &str, key_pem: &str, now: Timestamp) -> Result<CertMaterial> {
    let chain = parse_chain(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::validation("key", format!("no usable private key in the PEM ({e})")))?;
    CertifiedKey::from_der(chain.clone(), key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            Error::validation("key", "the private key does not match the certificate")
        }
        other => Error::validation("key", format!("unsupported private key: {other}")),
    })?;
    let leaf = &chain[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| Error::validation("cert", format!("the certificate cannot be parsed: {e}")))?;
    let not_before = Timestamp::from_millis(parsed.validity().not_before.timestamp() * 1000);
    let not_after = Timestamp::from_millis(parsed.validity().not_after.timestamp() * 1000);
    if not_after <= now {
        return Err(Error::validation(
            "cert",
            format!("the certificate expired on {not_after}"),
        ));
    }
    if not_before > now {
        return Err(Error::validation(
            "cert",
            format!("the certificate is not valid before {not_before}"),
        ));
    }
    Ok(CertMaterial {
        cert_pem: cert_pem.to_string(),
        key_pem: Zeroizing::new(key_pem.to_string()),
        fingerprint: fingerprint(leaf.as_ref()),
        not_before,
        not_after,
    })
}

fn parse_chain(cert_pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::validation("cert", format!("the certificate PEM cannot be read ({e})"))
        })?;
    if chain.is_empty() {
        return Err(Error::validation(
            "cert",
            "no CERTIFICATE block found in the PEM",
        ));
    }
    Ok(chain)
}

/// A ready-to-serve key from stored PEM.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>> {
    let chain = parse_chain(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::internal(format!("stored key: {e}")))?;
    let ck = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| Error::internal(format!("stored key: {e}")))?;
    Ok(Arc::new(ck))
}

/// Serves whichever certificate is active; swapped in place when an operator imports one.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<(CertificateId, Arc<CertifiedKey>)>,
}

impl CertResolver {
    pub fn new(id: CertificateId, key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new((id, key)),
        }
    }
    pub fn current_id(&self) -> Option<CertificateId> {
        self.current.read().ok().map(|g| g.0)
    }
    pub fn replace(&self, id: CertificateId, key: Arc<CertifiedKey>) {
        if let Ok(mut g) = self.current.write() {
            *g = (id, key);
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|g| g.1.clone())
    }
}

pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::internal)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless resumption tickets (keys held in memory only, rotated every 6 h): an agent
    // whose connection dropped (a NAT timeout, a new Wi-Fi) resumes without a full handshake,
    // at any fleet size. After a restart the keys are new and every agent shakes hands in full.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(Error::internal)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_790_000_000_000);

    #[test]
    fn generated_certificate_is_p256_with_the_expected_names() {
        let m = generate_self_signed("box.example", NOW).unwrap();
        let der = CertificateDer::from_pem_slice(m.cert_pem.as_bytes()).unwrap();
        assert_eq!(m.fingerprint, fingerprint(der.as_ref()));
        assert!(m.fingerprint.starts_with("sha256:") && m.fingerprint.len() == 71);
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let san = c
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            san.contains("box.example")
                && san.contains("localhost")
                && san.contains("IPAddress(7f:00:00:01)"),
            "{san}"
        );
        assert_eq!(
            c.public_key().algorithm.algorithm.to_id_string(),
            "1.2.840.10045.2.1"
        );
        assert!(parse_pair(&m.cert_pem, &m.key_pem, NOW).is_ok());
    }

    #[test]
    fn import_checks_key_match_expiry_and_pem() {
        let a = generate_self_signed("a", NOW).unwrap();
        let b = generate_self_signed("b", NOW).unwrap();
        let e = parse_pair(&a.cert_pem, &b.key_pem, NOW)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        let e = parse_pair(&a.cert_pem, &a.key_pem, a.not_after.plus_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("expired"), "{e}");
        let e = parse_pair("garbage", &a.key_pem, NOW)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        let e = parse_pair(&a.cert_pem, "nope", NOW)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("private key"), "{e}");
        let truncated = &a.cert_pem[..a.cert_pem.len() / 2];
        assert!(parse_pair(truncated, &a.key_pem, NOW).is_err());
    }
}
