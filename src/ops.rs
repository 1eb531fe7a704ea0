//! Operator commands that work on the data directory directly: certificates, audit verify.

use std::path::Path;

use crate::app;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::service;
use crate::store::Db;

pub fn cert_fingerprint(cfg: Config, clock: Clock) -> Result<String> {
    Ok(app::open(cfg, clock)?.fingerprint)
}

pub fn cert_import(cfg: Config, clock: Clock, cert: &Path, key: &Path) -> Result<String> {
    let read = |p: &Path, what: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::startup(format!("cannot read {what} file {}: {e}", p.display())))
    };
    let (cert_pem, key_pem) = (
        read(cert, "certificate")?,
        zeroize::Zeroizing::new(read(key, "key")?),
    );
    let appliance = app::open(cfg, clock)?;
    let ctx = &appliance.ctx;
    let stored =
        service::certificates::import(&ctx.db, &ctx.crypto, &cert_pem, &key_pem, ctx.clock.now())
            .map_err(|e| match e {
            Error::Validation { field, msg } => {
                let file = if field == "key" { key } else { cert };
                Error::startup(format!("{}: {msg}", file.display()))
            }
            other => other,
        })?;
    Ok(stored.fingerprint)
}

/// Ok(entries checked) or Err((first bad seq, why)).
pub fn audit_verify(cfg: &Config) -> Result<std::result::Result<u64, (i64, &'static str)>> {
    let db = Db::open_read_only(&cfg.db_path())?;
    service::system::verify_audit(&db)
}
