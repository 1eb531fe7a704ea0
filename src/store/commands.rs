//! Queued agent commands and the events agents upload.

use rusqlite::{OptionalExtension, Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{CommandId, DeviceId, TenantId};
use crate::model::commands::CommandState;
pub use crate::model::commands::StoredCommand;

const COLUMNS: &str = "id, tenant_id, device_id, seq, kind, args, issued_at, not_after, state, acked_at, details, args_sealed";

fn row(r: &Row<'_>) -> rusqlite::Result<StoredCommand> {
    Ok(StoredCommand {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        device_id: r.get("device_id")?,
        seq: r.get("seq")?,
        kind: r.get("kind")?,
        args: r.get("args")?,
        issued_at: r.get("issued_at")?,
        not_after: r.get("not_after")?,
        state: r.get("state")?,
        acked_at: r.get("acked_at")?,
        details: r.get("details")?,
        args_sealed: r.get("args_sealed")?,
    })
}

pub fn insert(tx: &WriteTx<'_>, c: &StoredCommand) -> Result<()> {
    tx.conn()
        .prepare_cached(&format!(
            "INSERT INTO commands ({COLUMNS}) VALUES (:id, :t, :d, :seq, :kind, :args, :issued, :na, :state, NULL, NULL, :sealed)"
        ))?
        .execute(named_params! {
            ":id": c.id, ":t": c.tenant_id, ":d": c.device_id, ":seq": c.seq, ":kind": c.kind, ":args": c.args,
            ":state": CommandState::Queued,
            ":issued": c.issued_at, ":na": c.not_after, ":sealed": c.args_sealed,
        })?;
    tx.note(super::hot::Note::Queued(c.device_id));
    Ok(())
}

/// Queued, unexpired commands of a device, oldest first (re-delivered until acknowledged).
pub fn pending(r: &Reader<'_>, device: DeviceId, now: Timestamp) -> Result<Vec<StoredCommand>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM commands WHERE device_id = :d AND state = 'queued' AND not_after > :now ORDER BY seq LIMIT 100"
    ))?;
    let rows = st.query_map(named_params! {":d": device, ":now": now}, row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Unscoped by tenant but bound to the authenticated device: another device's command is
/// simply not found.
pub fn for_device(
    r: &Reader<'_>,
    device: DeviceId,
    id: CommandId,
) -> Result<Option<StoredCommand>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM commands WHERE id = :id AND device_id = :d"
    ))?;
    Ok(st
        .query_row(named_params! {":id": id, ":d": device}, row)
        .optional()?)
}

/// Records the agent's answer once; a repeated ack of a finished command changes nothing.
pub fn ack(
    tx: &WriteTx<'_>,
    device: DeviceId,
    id: CommandId,
    state: CommandState,
    details: &str,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE commands SET state = :s, details = :det, acked_at = :now WHERE id = :id AND device_id = :d AND state = 'queued'",
        )?
        .execute(named_params! {":s": state, ":det": details, ":now": now, ":id": id, ":d": device})?;
    tx.note(super::hot::Note::Answered(device));
    Ok(n == 1)
}

pub fn recent(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: DeviceId,
    limit: u32,
) -> Result<Vec<StoredCommand>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM commands WHERE device_id = :d AND tenant_id = :t ORDER BY seq DESC LIMIT :n"
    ))?;
    let rows = st.query_map(
        named_params! {":d": device, ":t": scope.tenant(), ":n": limit},
        row,
    )?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Job: queued commands past `not_after` become `expired`.
pub fn expire(tx: &WriteTx<'_>, now: Timestamp) -> Result<u64> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE commands SET state = 'expired' WHERE state = 'queued' AND not_after <= :now",
        )?
        .execute(named_params! {":now": now})?;
    Ok(n as u64)
}

/// After a restore: orders still queued in the old copy are stale; none is delivered.
pub fn expire_all_queued(tx: &WriteTx<'_>) -> Result<u64> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE commands SET state = 'expired' WHERE state = 'queued'")?
        .execute([])?;
    tx.note(super::hot::Note::AllAnswered);
    Ok(n as u64)
}

/// An event a device reported: its own id (for exactly-once), kind, time and data.
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub at: i64,
    pub data: &'a serde_json::Value,
}

/// Stores an event unless its id was seen before; true when it is new.
pub fn insert_event(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    device: DeviceId,
    e: &NewEvent<'_>,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "INSERT OR IGNORE INTO device_events (device_id, event_id, tenant_id, kind, at, data, received_at)
             VALUES (:d, :id, :t, :kind, :at, :data, :now)",
        )?
        .execute(named_params! {
            ":d": device, ":id": e.id, ":t": tenant, ":kind": e.kind, ":at": e.at, ":data": e.data.to_string(), ":now": now,
        })?;
    Ok(n == 1)
}

#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub event_id: String,
    pub kind: String,
    pub at: Timestamp,
    pub data: String,
}

pub fn recent_events(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: DeviceId,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let mut st = r.conn.prepare_cached(
        "SELECT event_id, kind, at, data FROM device_events WHERE device_id = :d AND tenant_id = :t ORDER BY received_at DESC, at DESC LIMIT :n",
    )?;
    let rows = st.query_map(
        named_params! {":d": device, ":t": scope.tenant(), ":n": limit},
        |r| {
            Ok(StoredEvent {
                event_id: r.get("event_id")?,
                kind: r.get("kind")?,
                at: r.get("at")?,
                data: r.get("data")?,
            })
        },
    )?;
    rows.map(|r| r.map_err(Error::from)).collect()
}
