//! Webhooks and their delivery outbox.

use rusqlite::{Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::TenantId;
pub use crate::model::webhooks::Delivery;
use crate::model::webhooks::{DeliveryState, Format, Webhook};

const HOOK_COLUMNS: &str =
    "id, tenant_id, name, format, host, url_sealed, secret_sealed, created_at, events";

fn hook(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        name: r.get("name")?,
        // A format this build does not know is sent as the generic JSON.
        format: Format::parse(&r.get::<_, String>("format")?).unwrap_or(Format::Generic),
        host: r.get("host")?,
        url_sealed: r.get("url_sealed")?,
        secret_sealed: r.get("secret_sealed")?,
        created_at: r.get("created_at")?,
        events: r
            .get::<_, String>("events")?
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

pub fn insert(tx: &WriteTx<'_>, scope: &TenantScope, w: &Webhook) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO webhooks (id, tenant_id, name, format, host, url_sealed, secret_sealed, created_at, events)
             VALUES (:id, :t, :n, :f, :h, :u, :s, :now, :events)",
        )?
        .execute(named_params! {":id": w.id, ":t": scope.tenant(), ":n": w.name, ":f": w.format.as_str(),
            ":h": w.host, ":u": w.url_sealed, ":s": w.secret_sealed, ":now": w.created_at,
            ":events": w.events.join(",")})?;
    Ok(())
}

pub fn list(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<Webhook>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM webhooks WHERE tenant_id = :t ORDER BY created_at"
    ))?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, hook)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The webhooks that hear about an event in `tenant`: its own and the MSP tenant's.
pub fn listeners(r: &Reader<'_>, tenant: TenantId) -> Result<Vec<Webhook>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM webhooks
         WHERE tenant_id = :t OR tenant_id IN (SELECT id FROM tenants WHERE kind = 'msp')
         ORDER BY created_at"
    ))?;
    let rows = st.query_map(named_params! {":t": tenant}, hook)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_any(r: &Reader<'_>, id: &str) -> Result<Webhook> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = :id"
    ))?;
    let mut rows = st.query_map(named_params! {":id": id}, hook)?;
    Ok(rows.next().ok_or(Error::NotFound)??)
}

pub fn delete(tx: &WriteTx<'_>, scope: &TenantScope, id: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM webhooks WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":id": id, ":t": scope.tenant()})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

const DELIVERY_COLUMNS: &str =
    "id, webhook_id, tenant_id, event, request_id, payload, state, attempts,
    next_attempt_at, last_status, last_error, created_at, delivered_at";

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get("id")?,
        webhook_id: r.get("webhook_id")?,
        tenant_id: r.get("tenant_id")?,
        event: r.get("event")?,
        request_id: r.get("request_id")?,
        payload: r.get("payload")?,
        state: r.get("state")?,
        attempts: r.get("attempts")?,
        next_attempt_at: r.get("next_attempt_at")?,
        last_status: r.get("last_status")?,
        last_error: r.get("last_error")?,
        created_at: r.get("created_at")?,
        delivered_at: r.get("delivered_at")?,
    })
}

pub fn enqueue(
    tx: &WriteTx<'_>,
    w: &Webhook,
    event: &str,
    request_id: Option<&str>,
    payload: &str,
    now: Timestamp,
) -> Result<()> {
    let id = format!("dl-{}", uuid::Uuid::now_v7().simple());
    tx.conn()
        .prepare_cached(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event, request_id, payload, state,
                next_attempt_at, created_at)
             VALUES (:id, :w, :t, :e, :r, :p, 'pending', :now, :now)",
        )?
        .execute(named_params! {":id": id, ":w": w.id, ":t": w.tenant_id, ":e": event,
            ":r": request_id, ":p": payload, ":now": now})?;
    Ok(())
}

/// Claims up to `limit` due deliveries by pushing their next attempt `lease_ms` ahead, so a
/// concurrent sender skips them; a crash mid-send retries after the lease.
pub fn claim_due(
    tx: &WriteTx<'_>,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let mut st = tx.conn().prepare_cached(&format!(
        "UPDATE webhook_deliveries SET next_attempt_at = :lease
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= :now
                      ORDER BY next_attempt_at LIMIT :lim)
         RETURNING {DELIVERY_COLUMNS}"
    ))?;
    let rows = st.query_map(
        named_params! {":now": now, ":lease": Timestamp::from_millis(now.millis() + lease_ms), ":lim": limit},
        delivery,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records an attempt: delivered, or pending again at `retry_at`, or failed for good.
pub fn record(
    tx: &WriteTx<'_>,
    id: &str,
    state: DeliveryState,
    status: Option<u16>,
    error: Option<&str>,
    retry_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE webhook_deliveries SET state = :s, attempts = attempts + 1, last_status = :st,
                last_error = :e, next_attempt_at = :next,
                delivered_at = CASE WHEN :s = 'delivered' THEN :now ELSE delivered_at END
             WHERE id = :id",
        )?
        .execute(
            named_params! {":s": state, ":st": status, ":e": error, ":next": retry_at,
            ":now": now, ":id": id},
        )?;
    Ok(())
}

/// The delivery log of a tenant's webhooks, newest first.
pub fn deliveries(r: &Reader<'_>, scope: &TenantScope, limit: u32) -> Result<Vec<Delivery>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id IN
            (SELECT id FROM webhooks WHERE tenant_id = :t)
         ORDER BY created_at DESC, id DESC LIMIT :lim"
    ))?;
    let rows = st.query_map(
        named_params! {":t": scope.tenant(), ":lim": limit},
        delivery,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
