//! Appliance life cycle: start-up records, configuration changes, health.

use std::collections::BTreeMap;

use serde_json::json;

use super::audit::Audit;
use crate::clock::Timestamp;
use crate::config::Config;
use crate::error::Result;
use crate::model::audit::Event;
use crate::store::{self, Db};

const LAST_CONFIG_KEY: &str = "last_applied_config";

/// Audits the start and, when the effective configuration differs from the last start's,
/// which keys changed (old → new). One transaction.
pub async fn record_start(
    db: &Db,
    cfg: &Config,
    version: &str,
    now: Timestamp,
) -> Result<Vec<String>> {
    let current = cfg.flatten();
    let version = version.to_string();
    db.write(move |tx| {
        let previous: BTreeMap<String, String> =
            match store::settings::get(&tx.reader(), LAST_CONFIG_KEY)? {
                Some(s) => serde_json::from_str(&s).unwrap_or_default(),
                None => BTreeMap::new(),
            };
        let changed: Vec<String> = current
            .iter()
            .filter(|(k, v)| previous.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(
                previous
                    .keys()
                    .filter(|k| !current.contains_key(*k))
                    .cloned(),
            )
            .collect();
        Audit::new(Event::ServerStart, now)
            .details(json!({"version": version}))
            .append(tx)?;
        if !changed.is_empty() {
            let diff: BTreeMap<&String, serde_json::Value> = changed
                .iter()
                .map(|k| (k, json!({"old": previous.get(k), "new": current.get(k)})))
                .collect();
            Audit::new(Event::ConfigChanged, now)
                .details(json!({"changed": diff}))
                .append(tx)?;
            store::settings::put(tx, LAST_CONFIG_KEY, &serde_json::to_string(&current)?, now)?;
        }
        Ok(changed)
    })
    .await
}

pub async fn record_stop(db: &Db, now: Timestamp) -> Result<()> {
    db.write(move |tx| Audit::new(Event::ServerStop, now).append(tx).map(|_| ()))
        .await
}

/// A write-capable check: the writer must take the write lock and change a row (rolled back).
pub async fn health(db: &Db, now: Timestamp) -> Result<()> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.probe_write_blocking(now))
        .await
        .map_err(crate::error::Error::internal)?
}

/// `hourglass audit verify`: Ok(checked) or the first bad sequence number.
pub fn verify_audit(db: &Db) -> Result<std::result::Result<u64, (i64, &'static str)>> {
    let report = db.read_blocking(store::audit::verify)?;
    Ok(match report.broken {
        None => Ok(report.checked),
        Some(b) => Err((b.seq, b.reason)),
    })
}

/// The name this appliance goes by in checkpoints and syslog: `tls.hostname`, else the host's.
pub fn hostname(cfg: &Config) -> String {
    match cfg.tls.hostname.as_str() {
        "" => gethostname::gethostname().to_string_lossy().to_lowercase(),
        h => h.to_lowercase(),
    }
}
