//! Enrollment tokens and devices.

use rusqlite::{OptionalExtension, Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::model::devices::EnrollmentToken;
use crate::model::devices::{Alert, Device, Heartbeat};

fn token_row(r: &Row<'_>) -> rusqlite::Result<EnrollmentToken> {
    Ok(EnrollmentToken {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        uses_left: r.get("uses_left")?,
        expires_at: r.get("expires_at")?,
        revoked_at: r.get("revoked_at")?,
        created_at: r.get("created_at")?,
    })
}

pub fn insert_token(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    t: &EnrollmentToken,
    hash: &[u8],
    by: Option<String>,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO enrollment_tokens (id, tenant_id, token_hash, uses_left, expires_at, created_by, created_at)
             VALUES (:id, :t, :h, :uses, :exp, :by, :now)",
        )?
        .execute(named_params! {":id": t.id, ":t": scope.tenant(), ":h": hash, ":uses": t.uses_left, ":exp": t.expires_at, ":by": by, ":now": t.created_at})?;
    Ok(())
}

pub fn list_tokens(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<EnrollmentToken>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, tenant_id, uses_left, expires_at, revoked_at, created_at FROM enrollment_tokens
         WHERE tenant_id = :t ORDER BY created_at DESC LIMIT 100",
    )?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, token_row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn revoke_token(tx: &WriteTx<'_>, scope: &TenantScope, id: &str, now: Timestamp) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE enrollment_tokens SET revoked_at = coalesce(revoked_at, :now) WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Unscoped: enrollment is authenticated by the token itself. Spends one use if it is valid.
pub fn spend_token(
    tx: &WriteTx<'_>,
    hash: &[u8],
    now: Timestamp,
) -> Result<Option<EnrollmentToken>> {
    let t = tx
        .conn()
        .prepare_cached(
            "SELECT id, tenant_id, uses_left, expires_at, revoked_at, created_at FROM enrollment_tokens WHERE token_hash = :h",
        )?
        .query_row(named_params! {":h": hash}, token_row)
        .optional()?;
    let Some(t) = t else { return Ok(None) };
    if t.revoked_at.is_some() || t.expires_at <= now || t.uses_left <= 0 {
        return Ok(Some(EnrollmentToken { uses_left: 0, ..t }));
    }
    tx.conn()
        .prepare_cached("UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE id = :id")?
        .execute(named_params! {":id": t.id})?;
    Ok(Some(t))
}

const COLUMNS: &str = "id, tenant_id, hostname, os, os_version, agent_version, agent_hash, status, admin_members, enrolled_at, last_seen_at, alert, alert_at";

fn device_row(r: &Row<'_>) -> rusqlite::Result<Device> {
    let status: String = r.get("status")?;
    let members: String = r.get("admin_members")?;
    Ok(Device {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        hostname: r.get("hostname")?,
        os: r.get("os")?,
        os_version: r.get("os_version")?,
        agent_version: r.get("agent_version")?,
        agent_hash: r.get("agent_hash")?,
        active: status == "active",
        admin_members: serde_json::from_str(&members).unwrap_or_default(),
        enrolled_at: r.get("enrolled_at")?,
        last_seen_at: r.get("last_seen_at")?,
        alert: r.get("alert")?,
        alert_at: r.get("alert_at")?,
    })
}

pub struct NewDevice<'a> {
    pub id: DeviceId,
    pub hostname: &'a str,
    pub os: &'a str,
    pub os_version: &'a str,
    pub agent_version: &'a str,
}

pub fn insert(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    d: &NewDevice<'_>,
    secret_hash: &[u8],
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO devices (id, tenant_id, hostname, os, os_version, agent_version, secret_hash, status, enrolled_at, last_seen_at)
             VALUES (:id, :t, :h, :os, :osv, :av, :sh, 'active', :now, :now)",
        )?
        .execute(named_params! {
            ":id": d.id, ":t": scope.tenant(), ":h": d.hostname, ":os": d.os, ":osv": d.os_version,
            ":av": d.agent_version, ":sh": secret_hash, ":now": now,
        })?;
    Ok(())
}

/// A device with the hashes of its secret and of the one replacing it, if any.
pub struct Credentials {
    pub device: Device,
    pub secret_hash: Vec<u8>,
    pub next_secret_hash: Option<Vec<u8>>,
}

/// Unscoped: the agent API authenticates a device by id + secret before any tenant is known.
pub fn credentials(r: &Reader<'_>, id: DeviceId) -> Result<Option<Credentials>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, secret_hash, next_secret_hash FROM devices WHERE id = :id"
    ))?;
    Ok(st
        .query_row(named_params! {":id": id}, |r| {
            Ok(Credentials {
                device: device_row(r)?,
                secret_hash: r.get("secret_hash")?,
                next_secret_hash: r.get("next_secret_hash")?,
            })
        })
        .optional()?)
}

/// Keeps the hash of the secret the agent was just given (replacing an unused earlier one).
pub fn set_next_secret(tx: &WriteTx<'_>, id: DeviceId, hash: &[u8]) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE devices SET next_secret_hash = :h WHERE id = :id AND status = 'active'",
        )?
        .execute(named_params! {":h": hash, ":id": id})?;
    Ok(())
}

/// The agent called with its new secret: from now on it is the only one. False when there
/// was nothing to promote (a concurrent call did it).
pub fn promote_next_secret(tx: &WriteTx<'_>, id: DeviceId, hash: &[u8]) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE devices SET secret_hash = next_secret_hash, next_secret_hash = NULL
             WHERE id = :id AND next_secret_hash = :h AND status = 'active'",
        )?
        .execute(named_params! {":id": id, ":h": hash})?;
    tx.note(super::hot::Note::Credential(id));
    Ok(n == 1)
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: DeviceId) -> Result<Device> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices WHERE id = :id AND tenant_id = :t"
    ))?;
    st.query_row(named_params! {":id": id, ":t": scope.tenant()}, device_row)
        .optional()?
        .ok_or(Error::NotFound)
}

pub fn list(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<Device>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices WHERE tenant_id = :t ORDER BY status = 'retired', lower(hostname) LIMIT 5000"
    ))?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, device_row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn retire(tx: &WriteTx<'_>, scope: &TenantScope, id: DeviceId, now: Timestamp) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE devices SET status = 'retired', retired_at = :now WHERE id = :id AND tenant_id = :t AND status = 'active'")?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    tx.note(super::hot::Note::Credential(id));
    Ok(())
}

/// Batched heartbeat flush: last seen, agent build and administrators of many devices.
pub fn record_heartbeats(tx: &WriteTx<'_>, beats: &[(DeviceId, Heartbeat)]) -> Result<usize> {
    let mut st = tx.conn().prepare_cached(
        "UPDATE devices SET last_seen_at = max(last_seen_at, :at), agent_version = :v,
                agent_hash = CASE WHEN :h = '' THEN agent_hash ELSE :h END, admin_members = :m
         WHERE id = :id",
    )?;
    for (id, b) in beats {
        st.execute(
            named_params! {":id": id, ":at": b.at, ":v": b.agent_version, ":h": b.agent_hash,
            ":m": serde_json::to_string(&b.admins)?},
        )?;
    }
    Ok(beats.len())
}

/// Takes the next sequence number of a device (inside the transaction that queues the command).
pub fn next_seq(tx: &WriteTx<'_>, device: DeviceId) -> Result<i64> {
    let seq: i64 = tx
        .conn()
        .prepare_cached(
            "UPDATE devices SET next_seq = next_seq + 1 WHERE id = :id RETURNING next_seq - 1",
        )?
        .query_row(named_params! {":id": device}, |r| r.get(0))?;
    Ok(seq)
}

/// After a restore: every workstation's command numbers jump ahead of anything it may have
/// received from the newer, lost database (agents refuse an old sequence number).
pub fn jump_sequences(tx: &WriteTx<'_>, by: i64) -> Result<u64> {
    Ok(tx
        .conn()
        .prepare_cached("UPDATE devices SET next_seq = next_seq + :by")?
        .execute(named_params! {":by": by})? as u64)
}

/// Active devices not already alerted as silent that hold an open grant or technician login and have
/// not been seen for their tenant's silence limit.
pub fn silent_holding(r: &Reader<'_>, now: Timestamp) -> Result<Vec<Device>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices d WHERE d.status = 'active' AND coalesce(d.alert, '') != 'silent'
           AND d.last_seen_at < :now - 60000 * (SELECT silence_alert_minutes FROM tenants t WHERE t.id = d.tenant_id)
           AND (EXISTS (SELECT 1 FROM requests q WHERE q.device_id = d.id AND q.state = 'approved' AND q.expires_at > :now)
                OR EXISTS (SELECT 1 FROM logins l WHERE l.device_id = d.id AND l.state IN ('waiting', 'active')))"
    ))?;
    let rows = st.query_map(named_params! {":now": now}, device_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether the device held, at `at`, a grant or technician login that is still open.
pub fn held_rights(r: &Reader<'_>, id: DeviceId, at: Timestamp) -> Result<bool> {
    let mut st = r.conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM requests WHERE device_id = :d AND state = 'approved'
                        AND decided_at < :at AND expires_at > :at)
             OR EXISTS (SELECT 1 FROM logins WHERE device_id = :d AND state IN ('waiting', 'active')
                        AND created_at < :at)",
    )?;
    Ok(st.query_row(named_params! {":d": id, ":at": at}, |r| r.get(0))?)
}

/// Raises (Some) or clears (None) a device's tamper alert.
pub fn set_alert(
    tx: &WriteTx<'_>,
    id: DeviceId,
    alert: Option<Alert>,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE devices SET alert = :a, alert_at = CASE WHEN :a IS NULL THEN NULL ELSE :now END WHERE id = :id")?
        .execute(named_params! {":a": alert, ":now": now, ":id": id})?;
    Ok(())
}

/// A device by id whatever its tenant (the heartbeat flush, which the device itself sent).
pub fn by_id(r: &Reader<'_>, id: DeviceId) -> Result<Option<Device>> {
    let mut st = r
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM devices WHERE id = :id"))?;
    Ok(st
        .query_row(named_params! {":id": id}, device_row)
        .optional()?)
}
