//! Tenants and their settings.

use rusqlite::{OptionalExtension, Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::model::tenants::{LoginMode, Settings, Slug, Tenant, TenantKind};

const COLUMNS: &str = "id, kind, name, slug, status, co_management, login_mode, jit_enabled, jit_justification_required,
    jit_max_minutes, jit_pending_timeout_minutes, seats, time_zone, offline_login_minutes,
    silence_alert_minutes, remove_standing_admins, standing_admin_exceptions";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    let bad = |i, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            what.to_string().into(),
        )
    };
    let kind: String = r.get("kind")?;
    let slug: String = r.get("slug")?;
    let status: String = r.get("status")?;
    let mode: String = r.get("login_mode")?;
    Ok(Tenant {
        id: r.get("id")?,
        kind: TenantKind::parse(&kind).ok_or_else(|| bad(1, "tenant kind"))?,
        name: r.get("name")?,
        slug: Slug::parse(&slug).map_err(|_| bad(3, "slug"))?,
        active: status == "active",
        settings: Settings {
            co_management: r.get("co_management")?,
            login_mode: LoginMode::parse(&mode).ok_or_else(|| bad(6, "login mode"))?,
            jit_enabled: r.get("jit_enabled")?,
            jit_justification_required: r.get("jit_justification_required")?,
            jit_max_minutes: r.get("jit_max_minutes")?,
            jit_pending_timeout_minutes: r.get("jit_pending_timeout_minutes")?,
            seats: r.get("seats")?,
            time_zone: r.get("time_zone")?,
            offline_login_minutes: r.get("offline_login_minutes")?,
            silence_alert_minutes: r.get("silence_alert_minutes")?,
            remove_standing_admins: r.get("remove_standing_admins")?,
            standing_admin_exceptions: serde_json::from_str(
                &r.get::<_, String>("standing_admin_exceptions")?,
            )
            .unwrap_or_default(),
        },
    })
}

/// Unscoped: authorization itself uses it to find the tenant a URL names.
pub fn by_slug(r: &Reader<'_>, slug: &str) -> Result<Option<Tenant>> {
    let mut st = r
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tenants WHERE slug = :slug"))?;
    Ok(st
        .query_row(named_params! {":slug": slug}, from_row)
        .optional()?)
}

/// Unscoped: a principal's own (home) tenant.
pub fn by_id(r: &Reader<'_>, id: TenantId) -> Result<Option<Tenant>> {
    let mut st = r
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tenants WHERE id = :id"))?;
    Ok(st
        .query_row(named_params! {":id": id}, from_row)
        .optional()?)
}

pub fn get(r: &Reader<'_>, scope: &TenantScope) -> Result<Tenant> {
    by_id(r, scope.tenant())?.ok_or(Error::NotFound)
}

pub fn msp(r: &Reader<'_>) -> Result<Option<Tenant>> {
    let mut st = r
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tenants WHERE kind = 'msp'"))?;
    Ok(st.query_row([], from_row).optional()?)
}

/// All tenants, MSP first then by name. Callers filter by what the principal may see.
pub fn all(r: &Reader<'_>) -> Result<Vec<Tenant>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tenants ORDER BY kind = 'customer', lower(name)"
    ))?;
    let rows = st.query_map([], from_row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn insert(tx: &WriteTx<'_>, t: &Tenant, now: Timestamp) -> Result<()> {
    let s = &t.settings;
    tx.conn()
        .prepare_cached(
            "INSERT INTO tenants (id, kind, name, slug, status, co_management, login_mode, jit_enabled,
                jit_justification_required, jit_max_minutes, jit_pending_timeout_minutes, seats, time_zone, offline_login_minutes,
                silence_alert_minutes, remove_standing_admins, standing_admin_exceptions, created_at, updated_at)
             VALUES (:id, :kind, :name, :slug, 'active', :co, :mode, :jit, :just, :max, :timeout, :seats, :tz, :off, :silence,
                :rsa, :sae, :now, :now)",
        )?
        .execute(named_params! {
            ":id": t.id, ":kind": t.kind.as_str(), ":name": t.name, ":slug": t.slug.as_str(),
            ":co": s.co_management, ":mode": s.login_mode.as_str(), ":jit": s.jit_enabled,
            ":just": s.jit_justification_required, ":max": s.jit_max_minutes, ":timeout": s.jit_pending_timeout_minutes,
            ":seats": s.seats, ":tz": s.time_zone, ":off": s.offline_login_minutes,
            ":silence": s.silence_alert_minutes, ":rsa": s.remove_standing_admins,
            ":sae": serde_json::to_string(&s.standing_admin_exceptions)?, ":now": now,
        })
        .map_err(|e| unique_slug(e, t.slug.as_str()))?;
    Ok(())
}

fn unique_slug(e: rusqlite::Error, slug: &str) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::validation(
                "slug",
                format!("\"{slug}\" is already used by another tenant"),
            )
        }
        _ => e.into(),
    }
}

pub fn update(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    name: &str,
    slug: &Slug,
    s: &Settings,
    active: bool,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE tenants SET name = :name, slug = :slug, status = :status, co_management = :co, login_mode = :mode,
                jit_enabled = :jit, jit_justification_required = :just, jit_max_minutes = :max,
                jit_pending_timeout_minutes = :timeout, seats = :seats, time_zone = :tz,
                offline_login_minutes = :off, silence_alert_minutes = :silence,
                remove_standing_admins = :rsa, standing_admin_exceptions = :sae, updated_at = :now
             WHERE id = :id",
        )?
        .execute(named_params! {
            ":id": scope.tenant(), ":name": name, ":slug": slug.as_str(), ":status": if active { "active" } else { "disabled" },
            ":co": s.co_management, ":mode": s.login_mode.as_str(), ":jit": s.jit_enabled,
            ":just": s.jit_justification_required, ":max": s.jit_max_minutes, ":timeout": s.jit_pending_timeout_minutes,
            ":seats": s.seats, ":tz": s.time_zone, ":off": s.offline_login_minutes,
            ":silence": s.silence_alert_minutes, ":rsa": s.remove_standing_admins,
            ":sae": serde_json::to_string(&s.standing_admin_exceptions)?, ":now": now,
        })
        .map_err(|e| unique_slug(e, slug.as_str()))?;
    Ok(())
}
