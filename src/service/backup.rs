//! Online backups and restores (DUR-03, DUR-04). A backup is a consistent copy made by SQLite
//! (`VACUUM INTO`, never a file copy of the live database), checked (`integrity_check`, the
//! audit chain) and described by a manifest beside it: its SHA-256 and a signed checkpoint of
//! its audit log. The master key is not in it: it is backed up separately.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Ctx;
use super::audit::Audit;
use crate::error::{Error, Result};
use crate::model::audit::Event;
use crate::store::{self, Db};

/// Command numbers jump this far after a restore, past anything the lost newer copy issued.
const SEQUENCE_JUMP: i64 = 1_000_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    pub appliance_version: String,
    pub schema_version: i64,
    pub database: String,
    pub sha256: String,
    pub audit_entries: i64,
    /// A signed checkpoint (C2SP note) of the backup's audit log at its last entry.
    pub checkpoint: String,
}

pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut p = backup.as_os_str().to_owned();
    p.push(".manifest.json");
    PathBuf::from(p)
}

/// SHA-256 of a file, read in blocks.
pub fn file_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish().as_ref()))
}

/// What a copy of the database proves about itself: intact, its chain whole, and its size.
pub fn check_copy(path: &Path) -> Result<(i64, Vec<u8>)> {
    let db = Db::open_read_only(path)?;
    let integrity = db.integrity_check()?;
    if integrity != "ok" {
        return Err(Error::startup(format!(
            "{}: integrity check failed: {integrity}",
            path.display()
        )));
    }
    let report = db.read_blocking(store::audit::verify)?;
    if let Some(b) = report.broken {
        return Err(Error::startup(format!(
            "{}: audit chain broken at sequence {}: {}",
            path.display(),
            b.seq,
            b.reason
        )));
    }
    db.read_blocking(store::audit::head)?
        .ok_or_else(|| Error::startup(format!("{}: the audit log is empty", path.display())))
}

/// Writes a checked backup to `out` (mode 0600) and its manifest, and audits it.
pub fn create(ctx: &Ctx, out: &Path, by: Option<&By>) -> Result<Manifest> {
    if out.exists() || manifest_path(out).exists() {
        return Err(Error::startup(format!(
            "{} exists already: choose a new name",
            out.display()
        )));
    }
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    // Private from the first byte: SQLite fills an empty file it is given.
    {
        use crate::fsx::OwnerOnly;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .owner_only()
            .open(&partial)
            .map_err(|e| Error::startup(format!("cannot create {}: {e}", partial.display())))?;
    }
    let cleanup = |e: Error| {
        let _ = std::fs::remove_file(&partial);
        e
    };
    ctx.db.snapshot_to(&partial).map_err(cleanup)?;
    crate::fsx::set_mode(&partial, 0o600).map_err(|e| cleanup(e.into()))?;
    let (entries, _) = check_copy(&partial).map_err(cleanup)?;
    let checkpoint = Db::open_read_only(&partial)
        .and_then(|copy| super::checkpoints::sign_head(ctx, &copy))
        .map_err(cleanup)?;
    let schema_version = store::inspect(&partial).map_err(cleanup)?.unwrap_or(0);
    let sha256 = file_sha256(&partial).map_err(cleanup)?;
    std::fs::rename(&partial, out).map_err(|e| cleanup(e.into()))?;
    let m = Manifest {
        format: 1,
        created_at: ctx.clock.now().rfc3339(),
        appliance_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        database: out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        sha256,
        audit_entries: entries,
        checkpoint,
    };
    write_private(&manifest_path(out), &serde_json::to_string_pretty(&m)?)?;
    let details =
        json!({"file": out.display().to_string(), "sha256": m.sha256, "audit_entries": entries});
    let now = ctx.clock.now();
    let audit = Audit::new(Event::BackupCreated, now).details(details);
    let audit = match by {
        Some((p, o)) => audit.by(p, o),
        None => audit,
    };
    ctx.db
        .write_blocking(move |tx| audit.append(tx).map(|_| ()))?;
    Ok(m)
}

/// Who asked for a backup from the portal.
pub type By = (crate::authz::Principal, super::audit::Origin);

pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use crate::fsx::OwnerOnly;
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .owner_only()
        .open(path)
        .map_err(|e| Error::startup(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// A backup's manifest, read and parsed.
pub fn read_manifest(backup: &Path) -> Result<Manifest> {
    let mpath = manifest_path(backup);
    let text = std::fs::read_to_string(&mpath).map_err(|e| {
        Error::startup(format!("cannot read the manifest {}: {e}", mpath.display()))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::startup(format!("{}: not a backup manifest: {e}", mpath.display())))
}

/// Checks the staged copy of a backup (the very bytes that will be installed): its hash, then
/// (brought to this version's schema) its integrity, its chain, and that the manifest's signed
/// checkpoint matches it, with `vkey` (the current appliance's key) when there is one.
pub fn check_staged(staged: &Path, m: &Manifest, vkey: Option<&str>, shown: &Path) -> Result<()> {
    if file_sha256(staged)? != m.sha256 {
        return Err(Error::startup(format!(
            "{}: its SHA-256 differs from the manifest: the file is damaged or not this backup",
            shown.display()
        )));
    }
    // An older backup is brought up to this version's schema before it is judged.
    drop(Db::open(staged, std::time::Duration::from_secs(5), 1)?);
    let (entries, _) =
        check_copy(staged).map_err(|e| Error::startup(format!("{}: {e}", shown.display())))?;
    let db = Db::open_read_only(staged)?;
    match super::checkpoints::verify_against(&db, &m.checkpoint, vkey)? {
        Ok(_) if entries == m.audit_entries => Ok(()),
        Ok(_) => Err(Error::startup(format!(
            "{}: {entries} audit entries, the manifest says {}",
            shown.display(),
            m.audit_entries
        ))),
        Err(why) => Err(Error::startup(format!("{}: {why}", shown.display()))),
    }
}

/// Whether `crypto` opens the backup's secrets (its TLS key stands for all of them).
pub fn key_opens(
    backup: &Path,
    crypto: &crate::crypto::Crypto,
    now: crate::clock::Timestamp,
) -> Result<()> {
    let db = Db::open_read_only(backup)?;
    let cert = super::certificates::active(&db)?
        .ok_or_else(|| Error::startup(format!("{}: holds no TLS certificate", backup.display())))?;
    super::certificates::certified_key(&db, crypto, &cert, now).map(|_| ()).map_err(|_| {
        Error::startup(
            "master.key does not belong to this backup (its secrets do not open): put the key file that was backed up with it in the data directory",
        )
    })
}

/// On the restored database, in one transaction (DUR-04): agents' command numbers jump ahead,
/// stale queued orders are dropped, every escrowed password is rotated, and it is audited.
pub fn after_restore(ctx: &Ctx, m: &Manifest, from: &Path) -> Result<u64> {
    let now = ctx.clock.now();
    let (ctx2, m, from) = (ctx.clone(), m.clone(), from.display().to_string());
    ctx.db.write_blocking(move |tx| {
        store::devices::jump_sequences(tx, SEQUENCE_JUMP)?;
        store::logins::fail_all_undelivered(tx)?;
        let dropped = store::commands::expire_all_queued(tx)?;
        // What is open in the copy may have ended since: end it again (BR-03).
        let mut reconciled = 0;
        // A retired workstation takes no orders (and cannot connect): nothing to send it.
        let active = |tenant, device| {
            store::devices::get(&tx.reader(), &crate::authz::system_scope(tenant), device)
                .is_ok_and(|d| d.active)
        };
        for r in store::requests::all_running(&tx.reader())? {
            if active(r.tenant_id, r.device_id) {
                super::requests::revoke_after_restore(tx, &ctx2, &r, now)?;
                reconciled += 1;
            }
        }
        for l in store::logins::all_open(&tx.reader())? {
            if active(l.tenant_id, l.device_id)
                && super::logins::end_after_restore(tx, &ctx2, &l, now)?
            {
                reconciled += 1;
            }
        }
        let rotated = super::logins::rotate_all_escrowed(tx, &ctx2, now)?;
        Audit::new(Event::BackupRestored, now)
            .details(json!({
                "file": from, "backup_created_at": m.created_at, "audit_entries": m.audit_entries,
                "sha256": m.sha256, "stale_orders_dropped": dropped, "passwords_rotated": rotated,
                "sessions_ended_again": reconciled,
            }))
            .append(tx)?;
        Ok(rotated)
    })
}

const NEXT: &str = "backup_next_at";
/// A scheduled backup that failed is tried again after an hour.
const RETRY_MS: i64 = 3_600_000;

/// Sweep: starts a scheduled backup when one is due. The slot is claimed in the database first
/// (a sweep meanwhile does not start another); the copy runs beside the sweep.
pub async fn sweep(ctx: &Ctx, now: crate::clock::Timestamp) -> Result<u64> {
    let c = &ctx.cfg.backup;
    if c.keep == 0 || c.every_hours == 0 {
        return Ok(0);
    }
    let every = i64::from(c.every_hours) * 3_600_000;
    let due = ctx
        .db
        .write(move |tx| {
            let next =
                store::settings::get(&tx.reader(), NEXT)?.and_then(|v| v.parse::<i64>().ok());
            let claim = |at: i64| store::settings::put(tx, NEXT, &at.to_string(), now);
            match next {
                None => claim(now.millis() + every).map(|_| false),
                Some(n) if now.millis() < n => Ok(false),
                Some(_) => claim(now.millis() + every).map(|_| true),
            }
        })
        .await?;
    if !due {
        return Ok(0);
    }
    let ctx2 = ctx.clone();
    tokio::task::spawn_blocking(move || match scheduled(&ctx2, now, None) {
        Ok(path) => tracing::info!(backup = %path.display(), "scheduled backup written"),
        Err(e) => {
            metrics::counter!("hourglass_backup_failures_total").increment(1);
            tracing::error!(error = %e, "scheduled backup failed; trying again in an hour");
            let retry = (now.millis() + RETRY_MS).to_string();
            let _ = ctx2
                .db
                .write_blocking(move |tx| store::settings::put(tx, NEXT, &retry, now));
        }
    });
    Ok(1)
}

/// At start-up: the scheduled backups' directory exists and takes files, so a wrong setting
/// (or a read-only path under systemd's sandbox) stops the start instead of every backup.
pub fn check_dir(cfg: &crate::config::Config) -> Result<()> {
    use crate::fsx::OwnerOnly;
    if cfg.backup.keep == 0 {
        return Ok(());
    }
    let dir = scheduled_dir(cfg);
    let probe = dir.join(".write-test");
    std::fs::DirBuilder::new()
        .recursive(true)
        .owner_only()
        .create(&dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            Error::startup(format!(
                "backup.dir {} cannot take files: {e} (under systemd, add it to ReadWritePaths=; or set backup.keep = 0)",
                dir.display()
            ))
        })
}

/// Where scheduled backups go.
pub fn scheduled_dir(cfg: &crate::config::Config) -> PathBuf {
    if cfg.backup.dir.is_empty() {
        cfg.storage.data_dir.join("backups")
    } else {
        PathBuf::from(&cfg.backup.dir)
    }
}

fn scheduled(ctx: &Ctx, now: crate::clock::Timestamp, by: Option<&By>) -> Result<PathBuf> {
    use crate::fsx::OwnerOnly;
    let dir = scheduled_dir(&ctx.cfg);
    std::fs::DirBuilder::new()
        .recursive(true)
        .owner_only()
        .create(&dir)?;
    // Names sort by time: hourglass-2026-11-23T02-00-00.000Z.db
    let path = dir.join(format!("hourglass-{}.db", now.rfc3339().replace(':', "-")));
    create(ctx, &path, by)?;
    if ctx.cfg.backup.keep > 0 {
        prune(&dir, ctx.cfg.backup.keep as usize)?;
    }
    Ok(path)
}

/// Keeps the newest `keep` scheduled backups (with their manifests).
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hourglass-") && n.ends_with(".db"))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in backups.into_iter().take(excess) {
        std::fs::remove_file(manifest_path(&old)).ok();
        std::fs::remove_file(&old)?;
    }
    Ok(())
}

/// What the portal shows about backups (MSP admins).
pub struct Status {
    pub dir: PathBuf,
    pub keep: u32,
    pub every_hours: u32,
    pub next_at: Option<crate::clock::Timestamp>,
    /// Newest first: file name, size in bytes, audit entries (from its manifest).
    pub recent: Vec<(String, u64, Option<i64>)>,
}

pub async fn status(ctx: &Ctx, p: &crate::authz::Principal) -> Result<Status> {
    p.msp_scope()?;
    let next_at = ctx
        .db
        .read(|r| store::settings::get(r, NEXT))
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .map(crate::clock::Timestamp);
    let dir = scheduled_dir(&ctx.cfg);
    let mut recent: Vec<(String, u64, Option<i64>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".db"))
                .map(|e| {
                    let m = read_manifest(&e.path()).ok().map(|m| m.audit_entries);
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().to_string(), size, m)
                })
                .collect()
        })
        .unwrap_or_default();
    recent.sort_by(|a, b| b.0.cmp(&a.0));
    recent.truncate(10);
    Ok(Status {
        dir,
        keep: ctx.cfg.backup.keep,
        every_hours: ctx.cfg.backup.every_hours,
        next_at,
        recent,
    })
}

/// "Back up now" (MSP admins): the same checked backup as the scheduled one, audited with who
/// asked. Waits for it, so the answer says whether it worked.
pub async fn run_now(
    ctx: &Ctx,
    p: &crate::authz::Principal,
    o: &super::audit::Origin,
) -> Result<String> {
    p.msp_scope()?;
    let (ctx2, by, now) = (ctx.clone(), (p.clone(), o.clone()), ctx.clock.now());
    let path = tokio::task::spawn_blocking(move || scheduled(&ctx2, now, Some(&by)))
        .await
        .map_err(Error::internal)?
        // Shown to the admin: why it failed (a full disk, an unwritable directory).
        .map_err(|e| match e {
            Error::Startup(m) => Error::Unavailable(m),
            Error::Internal(m) => Error::Unavailable(format!("the backup failed: {m}")),
            e => e,
        })?;
    Ok(path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default())
}
