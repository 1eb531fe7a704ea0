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

/// Ok(what the checkpoint proves) or Err(why the log does not extend it).
pub fn audit_verify_checkpoint(
    cfg: &Config,
    file: &Path,
    key: Option<&str>,
) -> Result<std::result::Result<String, String>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::startup(format!("cannot read {}: {e}", p.display())))
    };
    let text = read(file)?;
    // `--key` takes the verifier key itself or a file that holds it.
    let key = match key {
        Some(k) if Path::new(k).is_file() => Some(read(Path::new(k))?),
        Some(k) => Some(k.to_string()),
        None => None,
    };
    let db = Db::open_read_only(&cfg.db_path())?;
    service::checkpoints::verify_against(&db, &text, key.as_deref()).map_err(|e| match e {
        Error::Startup(m) => Error::startup(format!("{}: {m}", file.display())),
        other => other,
    })
}

/// What `hourglass audit export` selects.
pub struct AuditExport<'a> {
    pub format: &'a str,
    pub tenant: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub out: Option<&'a Path>,
}

/// Streams the matching entries to the file or standard output; returns how many.
pub fn audit_export(cfg: &Config, a: &AuditExport<'_>) -> Result<u64> {
    use std::io::Write;
    let format = crate::model::audit_export::Format::parse(a.format)
        .ok_or_else(|| Error::startup("--format: must be csv or ndjson"))?;
    let day = |s: Option<&str>, flag: &str| match s {
        None => Ok(None),
        Some(d) => crate::clock::Timestamp::parse_date(d)
            .map(Some)
            .ok_or_else(|| Error::startup(format!("--{flag}: must be a date like 2026-11-23"))),
    };
    let filter = service::audit::ListFilter {
        since: day(a.from, "from")?,
        until: day(a.to, "to")?.map(|t| t.plus_secs(86_400)),
        ..Default::default()
    };
    let db = Db::open_read_only(&cfg.db_path())?;
    let scope = match a.tenant {
        None => None,
        Some(slug) => {
            let t = db
                .read_blocking(|r| crate::store::tenants::by_slug(r, slug))?
                .ok_or_else(|| Error::startup(format!("--tenant: no tenant {slug:?}")))?;
            Some(crate::authz::system_scope(t.id))
        }
    };
    let n = match a.out {
        Some(path) => {
            use crate::fsx::OwnerOnly;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .owner_only()
                .open(path)
                .map_err(|e| Error::startup(format!("cannot create {}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::new(f);
            let n = service::audit::export_to(&db, scope, &filter, format, &mut w)?;
            w.flush()?;
            n
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let n = service::audit::export_to(&db, scope, &filter, format, &mut w)?;
            w.flush()?;
            n
        }
    };
    Ok(n)
}

/// `hourglass backup --out F`: a checked online copy and its manifest (the appliance may run).
pub fn backup(cfg: Config, clock: Clock, out: &Path) -> Result<service::backup::Manifest> {
    let appliance = app::open(cfg, clock)?;
    service::backup::create(&appliance.ctx, out, None)
}

/// `hourglass restore --from F`: the backup is copied into a staging directory, and that copy
/// is checked (hash, integrity, chain, signed checkpoint, the key opens its secrets) and
/// prepared (DUR-04: agents' command numbers, stale orders, password rotation) before the live
/// database is swapped for it; a failure on the way leaves the data directory as it was.
/// Returns where the replaced database was kept and how many passwords will be rotated.
pub fn restore(
    cfg: Config,
    clock: Clock,
    from: &Path,
) -> Result<(Option<std::path::PathBuf>, u64)> {
    let manifest = service::backup::read_manifest(from)?;
    let dir = cfg.storage.data_dir.clone();
    let key_path = cfg.key_path();
    if !key_path.exists() {
        return Err(Error::startup(format!(
            "{} is missing: a restore needs the master.key backed up with this database (it is never inside the backup)",
            key_path.display()
        )));
    }
    let _lock = app::lock_data_dir(&dir)?;
    // The current log's key, if there is one: the backup's checkpoint must carry it.
    let current_vkey = Db::open_read_only(&cfg.db_path())
        .ok()
        .and_then(|db| service::checkpoints::verifier_key(&db).ok().flatten());
    let stamp = clock.now().millis();
    let staging = dir.join(format!("restore-{stamp}"));
    let staged = staging.join("hourglass.db");
    let result = stage_and_prepare(
        &cfg,
        &clock,
        from,
        &staging,
        &manifest,
        current_vkey.as_deref(),
    );
    let rotated = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // The swap: the old files aside, the prepared ones in, the directory synced.
    let mut kept = None;
    if cfg.db_path().exists() {
        let aside = dir.join(format!("hourglass.db.before-restore-{stamp}"));
        std::fs::rename(cfg.db_path(), &aside)?;
        kept = Some(aside);
    }
    for ext in ["-wal", "-shm"] {
        let side = dir.join(format!("hourglass.db{ext}"));
        if side.exists() {
            std::fs::rename(
                &side,
                dir.join(format!("hourglass.db{ext}.before-restore-{stamp}")),
            )?;
        }
        let new = staging.join(format!("hourglass.db{ext}"));
        if new.exists() {
            std::fs::rename(&new, &side)?;
        }
    }
    std::fs::rename(&staged, cfg.db_path())?;
    // The restored log is shorter than the last checkpoint, truthfully: signing resumes from it.
    for name in [service::checkpoints::FILE, "audit-checkpoint.tmp"] {
        let f = dir.join(name);
        if f.exists() {
            std::fs::rename(&f, dir.join(format!("{name}.before-restore-{stamp}")))?;
        }
    }
    std::fs::File::open(&dir)?.sync_all()?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok((kept, rotated))
}

/// Copies the backup into `staging` (with the key beside it), checks the copy and prepares it.
fn stage_and_prepare(
    cfg: &Config,
    clock: &Clock,
    from: &Path,
    staging: &Path,
    manifest: &service::backup::Manifest,
    current_vkey: Option<&str>,
) -> Result<u64> {
    use crate::fsx::OwnerOnly;
    std::fs::DirBuilder::new().owner_only().create(staging)?;
    let staged = staging.join("hourglass.db");
    let copy_private = |src: &Path, dst: &Path| -> Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .owner_only()
            .open(dst)?;
        let mut input = std::fs::File::open(src)
            .map_err(|e| Error::startup(format!("cannot read {}: {e}", src.display())))?;
        std::io::copy(&mut input, &mut out)?;
        out.sync_all()?;
        Ok(())
    };
    copy_private(from, &staged)?;
    copy_private(&cfg.key_path(), &staging.join("master.key"))?;
    service::backup::check_staged(&staged, manifest, current_vkey, from)?;
    let crypto = crate::crypto::Crypto::load_or_create(&cfg.key_path(), false)?;
    service::backup::key_opens(&staged, &crypto, clock.now())?;
    let mut staged_cfg = cfg.clone();
    staged_cfg.storage.data_dir = staging.to_path_buf();
    let appliance = app::open(staged_cfg, clock.clone())?;
    let rotated = service::backup::after_restore(&appliance.ctx, manifest, from)?;
    drop(appliance);
    Ok(rotated)
}

pub fn admin_setup(
    cfg: Config,
    clock: Clock,
    msp: &str,
    first: &str,
    last: &str,
    email: &str,
) -> Result<String> {
    let base = cfg.links().portal;
    let appliance = app::open(cfg, clock)?;
    let token = service::setup::headless_setup(&appliance.ctx, msp, first, last, email)
        .map_err(cli_error)?;
    Ok(format!("{base}/enroll/{token}"))
}

pub fn create_token(
    cfg: Config,
    clock: Clock,
    email: &str,
    name: &str,
    scope: service::tokens::Scope,
) -> Result<String> {
    let appliance = app::open(cfg, clock)?;
    service::tokens::create_for_email(&appliance.ctx, email, name, scope).map_err(cli_error)
}

/// Validation errors read as `--field: message` on the command line.
fn cli_error(e: Error) -> Error {
    match e {
        Error::Validation { field, msg } => {
            Error::startup(format!("--{}: {msg}", field.replace('_', "-")))
        }
        Error::Conflict(m) => Error::startup(m),
        other => other,
    }
}

/// `hourglass admin enrollment-token`: (token, agent command line).
pub fn enrollment_token(
    cfg: Config,
    clock: Clock,
    tenant: &str,
    hours: u32,
    uses: u32,
) -> Result<(String, String)> {
    let base = cfg.links().agent;
    let appliance = app::open(cfg, clock)?;
    let n = service::devices::NewToken { hours, uses };
    service::devices::create_token_for_slug(&appliance.ctx, tenant, n, &base).map_err(cli_error)
}
