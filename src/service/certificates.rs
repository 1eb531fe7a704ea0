//! The appliance's TLS certificate: generated once, replaceable by an operator's.

use std::sync::Arc;

use serde_json::json;

use super::audit::Audit;
use crate::clock::Timestamp;
use crate::crypto::{Crypto, SealContext};
use crate::error::{Error, Result};
use crate::ids::CertificateId;
use crate::model::audit::Event;
use crate::store::Db;
use crate::store::certificates::{self as certs, StoredCertificate};
use crate::tls::{self, CertMaterial};

fn seal_ctx(id: &str) -> SealContext<'_> {
    SealContext {
        table: "tls_certificates",
        column: "key_sealed",
        row_id: id,
        tenant_id: "",
    }
}

/// The active certificate, generating a self-signed one on first start.
pub fn ensure(
    db: &Db,
    crypto: &Crypto,
    hostname: &str,
    now: Timestamp,
) -> Result<StoredCertificate> {
    if let Some(c) = db.read_blocking(certs::active)? {
        return Ok(c);
    }
    let material = tls::generate_self_signed(hostname, now)?;
    store_material(
        db,
        crypto,
        material,
        "self_signed",
        Event::CertGenerated,
        now,
    )
}

/// Installs an operator's certificate (validated first); the running server picks it up
/// within one scheduler cycle.
pub fn import(
    db: &Db,
    crypto: &Crypto,
    cert_pem: &str,
    key_pem: &str,
    now: Timestamp,
) -> Result<StoredCertificate> {
    let material = tls::parse_pair(cert_pem, key_pem, now)?;
    store_material(db, crypto, material, "imported", Event::CertImported, now)
}

fn store_material(
    db: &Db,
    crypto: &Crypto,
    m: CertMaterial,
    source: &str,
    event: Event,
    now: Timestamp,
) -> Result<StoredCertificate> {
    let id = CertificateId::new();
    let key_sealed = crypto.seal(&seal_ctx(&id.to_string()), m.key_pem.as_bytes())?;
    let stored = StoredCertificate {
        id,
        source: source.to_string(),
        cert_pem: m.cert_pem,
        key_sealed,
        fingerprint: m.fingerprint,
        not_before: m.not_before,
        not_after: m.not_after,
    };
    let c = stored.clone();
    db.write_blocking(move |tx| {
        certs::activate(tx, &c, now)?;
        Audit::new(event, now)
            .target("certificate", c.id)
            .details(json!({"fingerprint": c.fingerprint, "not_after": c.not_after.rfc3339(), "source": c.source}))
            .append(tx)?;
        Ok(())
    })?;
    Ok(stored)
}

/// The serving key of a stored certificate. A blob that does not open is audited.
pub fn certified_key(
    db: &Db,
    crypto: &Crypto,
    c: &StoredCertificate,
    now: Timestamp,
) -> Result<Arc<rustls::sign::CertifiedKey>> {
    let id = c.id.to_string();
    match crypto.open(&seal_ctx(&id), &c.key_sealed) {
        Ok(key) => {
            let key = String::from_utf8(key.to_vec())
                .map_err(|_| Error::internal("stored key is not PEM"))?;
            tls::certified_key(&c.cert_pem, &key)
        }
        Err(e) => {
            let cid = c.id;
            db.write_blocking(move |tx| {
                Audit::new(Event::CryptDecryptFail, now)
                    .failure()
                    .target("certificate", cid)
                    .append(tx)
                    .map(|_| ())
            })?;
            Err(Error::startup(format!(
                "the TLS key cannot be decrypted with this master.key ({e}); restore the key file that belongs to this database"
            )))
        }
    }
}

pub fn active(db: &Db) -> Result<Option<StoredCertificate>> {
    db.read_blocking(certs::active)
}

/// Details for the expiry warning.
pub fn expiry_details(c: &StoredCertificate) -> serde_json::Value {
    json!({"fingerprint": c.fingerprint, "not_after": c.not_after.rfc3339()})
}
