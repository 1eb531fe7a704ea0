//! Appliance life cycle: start-up records, configuration changes, health.

use std::collections::BTreeMap;

use serde_json::json;

use super::audit::Audit;
use crate::clock::Timestamp;
use crate::config::Config;
use crate::error::{Error, Result};
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
/// Why /healthz answers 503: a short code for monitoring and a sentence for the operator.
#[derive(Debug)]
pub struct Unhealthy {
    pub reason: &'static str,
    pub message: String,
}

/// Healthy only when the disk has room above `storage.min_free_mb`, a real fsync'd file write
/// succeeds beside the database, and the writer can change a row (DUR-02, FLT-06).
pub async fn health(
    db: &Db,
    storage: &crate::config::StorageConfig,
    now: Timestamp,
) -> std::result::Result<(), Unhealthy> {
    let db = db.clone();
    let dir = storage.data_dir.clone();
    let floor = storage.min_free_mb.saturating_mul(1024 * 1024);
    let checked = tokio::task::spawn_blocking(move || -> Result<Option<Unhealthy>> {
        let free = store::disk::free_bytes(&dir)?;
        metrics::gauge!("hourglass_storage_free_bytes").set(free as f64);
        if free < floor {
            return Ok(Some(Unhealthy {
                reason: "disk_low",
                message: format!(
                    "only {} free for the database, below the floor of {} (storage.min_free_mb)",
                    mib(free),
                    mib(floor)
                ),
            }));
        }
        store::disk::probe_write(&dir)?;
        db.probe_write_blocking(now)?;
        Ok(None)
    })
    .await
    .map_err(Error::internal)
    .and_then(|r| r);
    let problem = match checked {
        Ok(None) => return Ok(()),
        Ok(Some(p)) => p,
        Err(Error::StorageFull) => Unhealthy {
            reason: "disk_full",
            message: "the disk under the database cannot take a write".into(),
        },
        Err(e) => Unhealthy {
            reason: "database",
            message: format!("the database cannot take a write: {e}"),
        },
    };
    metrics::counter!("hourglass_health_failures_total", "reason" => problem.reason).increment(1);
    Err(problem)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
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
