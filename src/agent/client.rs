//! HTTPS to the appliance with the certificate pinned by fingerprint: the appliance usually
//! has a self-signed certificate, so trust comes from the `sha256:` pin given at enrollment,
//! and a mismatch fails the handshake before any request is sent (CRY-06).

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::crypto::ct_eq;
use crate::error::{Error, Result};

/// Accepts exactly the certificate whose DER hashes to the pinned fingerprint.
#[derive(Debug)]
pub struct PinnedCert {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCert {
    /// `pin` is `sha256:` + 64 lowercase hex digits, as `hourglass cert fingerprint` prints.
    pub fn new(pin: &str) -> Result<Self> {
        let pin = pin.trim().to_ascii_lowercase();
        let hex = pin.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::validation(
                "fingerprint",
                "expected sha256: followed by 64 hex digits",
            ));
        }
        Ok(Self {
            fingerprint: pin,
            provider: crate::tls::provider(),
        })
    }
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let seen = crate::tls::fingerprint(end_entity.as_ref());
        if ct_eq(seen.as_bytes(), self.fingerprint.as_bytes()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {seen} does not match the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration that trusts only the pinned certificate.
pub fn pinned_tls_config(pin: &str) -> Result<rustls::ClientConfig> {
    let verifier = Arc::new(PinnedCert::new(pin)?);
    let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::internal)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // HTTP/2 when the appliance offers it: many agents' long-polls share one connection.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// An HTTP client for the appliance, pinned to `pin`.
pub fn pinned_client(pin: &str) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(pinned_tls_config(pin)?)
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::internal(format!("http client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_well_formed() {
        assert!(PinnedCert::new(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(PinnedCert::new(&format!("SHA256:{}", "A".repeat(64))).is_ok());
        assert!(PinnedCert::new("sha256:abc").is_err());
        assert!(PinnedCert::new(&"a".repeat(64)).is_err());
        assert!(PinnedCert::new(&format!("sha256:{}", "g".repeat(64))).is_err());
    }
}
