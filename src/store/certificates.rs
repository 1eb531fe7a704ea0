//! TLS certificates: exactly one active; private keys only as sealed blobs.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::CertificateId;

#[derive(Clone, Debug)]
pub struct StoredCertificate {
    pub id: CertificateId,
    pub source: String,
    pub cert_pem: String,
    pub key_sealed: Vec<u8>,
    pub fingerprint: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

pub fn active(r: &Reader<'_>) -> Result<Option<StoredCertificate>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, source, cert_pem, key_sealed, fingerprint, not_before, not_after
         FROM tls_certificates WHERE active = 1",
    )?;
    Ok(st
        .query_row([], |r| {
            Ok(StoredCertificate {
                id: r.get("id")?,
                source: r.get("source")?,
                cert_pem: r.get("cert_pem")?,
                key_sealed: r.get("key_sealed")?,
                fingerprint: r.get("fingerprint")?,
                not_before: r.get("not_before")?,
                not_after: r.get("not_after")?,
            })
        })
        .optional()?)
}

/// Makes `c` the one active certificate.
pub fn activate(tx: &WriteTx<'_>, c: &StoredCertificate, now: Timestamp) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE tls_certificates SET active = 0 WHERE active = 1")?
        .execute([])?;
    conn.prepare_cached(
        "INSERT INTO tls_certificates (id, source, cert_pem, key_sealed, fingerprint, not_before, not_after, active, created_at)
         VALUES (:id, :source, :cert_pem, :key_sealed, :fingerprint, :not_before, :not_after, 1, :now)",
    )?
    .execute(named_params! {
        ":id": c.id, ":source": c.source, ":cert_pem": c.cert_pem, ":key_sealed": c.key_sealed,
        ":fingerprint": c.fingerprint, ":not_before": c.not_before, ":not_after": c.not_after, ":now": now,
    })?;
    Ok(())
}
