//! The audit table: append inside a write transaction, stream for verification.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::error::{Error, Result};
use crate::model::audit::{
    ActorKind, Break, Entry, GENESIS, Outcome, Verifier, VerifyReport, chain_hash,
};

/// Appends one entry, chained to the current head. Only possible inside a write transaction,
/// so the entry commits or rolls back with the change it records (AUD-01).
pub fn append(tx: &WriteTx<'_>, entry: &Entry) -> Result<i64> {
    let conn = tx.conn();
    let head: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match head {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_vec()),
    };
    let hash = chain_hash(seq, &prev, entry);
    conn.prepare_cached(
        "INSERT INTO audit (seq, id, at, event, outcome, tenant_id, actor_kind, actor_id, target_kind, target_id,
                            device_id, request_identifier, ticket_identifier, ip, http_request_id, details, prev_hash, hash)
         VALUES (:seq, :id, :at, :event, :outcome, :tenant_id, :actor_kind, :actor_id, :target_kind, :target_id,
                 :device_id, :request_identifier, :ticket_identifier, :ip, :http_request_id, :details, :prev_hash, :hash)",
    )?
    .execute(named_params! {
        ":seq": seq, ":id": entry.id, ":at": entry.at, ":event": entry.event, ":outcome": entry.outcome.as_str(),
        ":tenant_id": entry.tenant_id, ":actor_kind": entry.actor_kind.as_str(), ":actor_id": entry.actor_id,
        ":target_kind": entry.target_kind, ":target_id": entry.target_id, ":device_id": entry.device_id,
        ":request_identifier": entry.request_identifier, ":ticket_identifier": entry.ticket_identifier,
        ":ip": entry.ip, ":http_request_id": entry.http_request_id, ":details": entry.details,
        ":prev_hash": prev, ":hash": hash.as_slice(),
    })?;
    conn.prepare_cached(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(named_params! {":seq": seq, ":hash": hash.as_slice()})?;
    Ok(seq)
}

const COLUMNS: &str = "seq, id, at, event, outcome, tenant_id, actor_kind, actor_id, target_kind, target_id, device_id,
    request_identifier, ticket_identifier, ip, http_request_id, details, prev_hash, hash";

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Entry, Vec<u8>, Vec<u8>)> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let outcome: String = r.get("outcome")?;
    let actor_kind: String = r.get("actor_kind")?;
    let e = Entry {
        id: r.get("id")?,
        at: r.get("at")?,
        event: r.get("event")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| bad(4, "outcome"))?,
        tenant_id: r.get("tenant_id")?,
        actor_kind: ActorKind::parse(&actor_kind).ok_or_else(|| bad(6, "actor kind"))?,
        actor_id: r.get("actor_id")?,
        target_kind: r.get("target_kind")?,
        target_id: r.get("target_id")?,
        device_id: r.get("device_id")?,
        request_identifier: r.get("request_identifier")?,
        ticket_identifier: r.get("ticket_identifier")?,
        ip: r.get("ip")?,
        http_request_id: r.get("http_request_id")?,
        details: r.get("details")?,
    };
    Ok((r.get("seq")?, e, r.get("prev_hash")?, r.get("hash")?))
}

/// Recomputes the chain row by row (streaming) and compares its end with the recorded head.
pub fn verify(r: &Reader<'_>) -> Result<VerifyReport> {
    let mut v = Verifier::default();
    let mut st = r
        .conn
        .prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let (seq, entry, prev, hash) = match entry_from_row(row) {
            Ok(x) => x,
            Err(_) => {
                let seq: i64 = row.get(0)?;
                return Ok(VerifyReport {
                    checked: v.checked,
                    broken: Some(Break {
                        seq,
                        reason: "unreadable entry",
                    }),
                });
            }
        };
        if let Err(b) = v.push(seq, &entry, &prev, &hash) {
            return Ok(VerifyReport {
                checked: v.checked,
                broken: Some(b),
            });
        }
    }
    let head: Option<(i64, Vec<u8>)> = r
        .conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(VerifyReport {
        checked: v.checked,
        broken: v.finish(head).err(),
    })
}

/// The chain head: (size of the log, hash of its last entry).
pub fn head(r: &Reader<'_>) -> Result<Option<(i64, Vec<u8>)>> {
    Ok(r.conn
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The stored chain hash of entry `seq`, if there is one.
pub fn hash_at(r: &Reader<'_>, seq: i64) -> Result<Option<Vec<u8>>> {
    Ok(r.conn
        .prepare_cached("SELECT hash FROM audit WHERE seq = :seq")?
        .query_row(named_params! {":seq": seq}, |r| r.get(0))
        .optional()?)
}

/// Filters for listing entries; every field narrows the result.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub event: Option<String>,
    pub since_seq: Option<i64>,
    /// 0 means the default page of 100; at most 1000.
    pub limit: u32,
}

/// Newest first.
pub fn list(r: &Reader<'_>, f: &Filter) -> Result<Vec<(i64, Entry)>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (:event IS NULL OR event = :event) AND seq > coalesce(:since, 0)
         ORDER BY seq DESC LIMIT :limit"
    ))?;
    let rows = st.query_map(
        named_params! {":event": f.event, ":since": f.since_seq, ":limit": if f.limit == 0 { 100 } else { f.limit.min(1000) }},
        entry_from_row,
    )?;
    rows.map(|r| r.map(|(seq, e, _, _)| (seq, e)).map_err(Error::from))
        .collect()
}

/// Whether an entry of `event` about `target_id` was written at or after `since`.
pub fn exists_since(
    r: &Reader<'_>,
    event: &str,
    target_id: &str,
    since: crate::clock::Timestamp,
) -> Result<bool> {
    let mut st = r.conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM audit WHERE event = :event AND target_id = :target AND at >= :since)",
    )?;
    Ok(st.query_row(
        named_params! {":event": event, ":target": target_id, ":since": since},
        |r| r.get(0),
    )?)
}

/// What the audit page and API filter on; every set field narrows the result.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub event: Option<String>,
    pub actor: Option<String>,
    /// Paging: entries older than this sequence number.
    pub before_seq: Option<i64>,
    pub since: Option<crate::clock::Timestamp>,
    pub until: Option<crate::clock::Timestamp>,
    pub limit: u32,
}

/// Entries of one tenant (or all, when `scope` is None: MSP admins only), newest first.
pub fn list_scoped(
    r: &Reader<'_>,
    scope: Option<&crate::authz::TenantScope>,
    q: &Query,
) -> Result<Vec<(i64, Entry)>> {
    let tenant = scope.map(|s| s.tenant().to_string());
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (:all OR tenant_id = :tenant) AND (:event IS NULL OR event = :event)
           AND (:actor IS NULL OR actor_id = :actor) AND seq < coalesce(:before, 9223372036854775807)
           AND at >= coalesce(:since, 0) AND at < coalesce(:until, 9223372036854775807)
         ORDER BY seq DESC LIMIT :limit"
    ))?;
    let rows = st.query_map(
        named_params! {
            ":all": tenant.is_none(), ":tenant": tenant, ":event": q.event, ":actor": q.actor, ":before": q.before_seq,
            ":since": q.since, ":until": q.until, ":limit": q.limit.clamp(1, 500),
        },
        entry_from_row,
    )?;
    rows.map(|r| r.map(|(seq, e, _, _)| (seq, e)).map_err(Error::from))
        .collect()
}

/// Every matching entry of one tenant (all tenants when `scope` is None), oldest first, one at
/// a time. Returns how many were passed to `f`, or `max + 1` when more than `max` match.
pub fn each(
    r: &Reader<'_>,
    scope: Option<&crate::authz::TenantScope>,
    q: &Query,
    max: u64,
    mut f: impl FnMut(i64, &Entry) -> Result<()>,
) -> Result<u64> {
    let tenant = scope.map(|s| s.tenant().to_string());
    let mut st = r.conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (:all OR tenant_id = :tenant) AND (:event IS NULL OR event = :event)
           AND (:actor IS NULL OR actor_id = :actor)
           AND at >= coalesce(:since, 0) AND at < coalesce(:until, 9223372036854775807)
         ORDER BY seq"
    ))?;
    let mut rows = st.query(named_params! {
        ":all": tenant.is_none(), ":tenant": tenant, ":event": q.event, ":actor": q.actor,
        ":since": q.since, ":until": q.until,
    })?;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        n += 1;
        if n > max {
            break;
        }
        let (seq, e, _, _) = entry_from_row(row)?;
        f(seq, &e)?;
    }
    Ok(n)
}

/// Up to `limit` entries after `seq`, oldest first (forwarding resumes from a cursor).
pub fn after(r: &Reader<'_>, seq: i64, limit: u32) -> Result<Vec<(i64, Entry)>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit WHERE seq > :seq ORDER BY seq LIMIT :limit"
    ))?;
    let rows = st.query_map(named_params! {":seq": seq, ":limit": limit}, entry_from_row)?;
    rows.map(|r| r.map(|(seq, e, _, _)| (seq, e)).map_err(Error::from))
        .collect()
}

/// Entries about one object of a tenant (a policy's audit tab), newest first.
pub fn about(
    r: &Reader<'_>,
    scope: &crate::authz::TenantScope,
    target_kind: &str,
    target_id: &str,
    limit: u32,
) -> Result<Vec<(i64, Entry)>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit WHERE tenant_id = :t AND target_kind = :k AND target_id = :id
         ORDER BY seq DESC LIMIT :limit"
    ))?;
    let rows = st.query_map(
        named_params! {":t": scope.tenant().to_string(), ":k": target_kind, ":id": target_id, ":limit": limit.clamp(1, 500)},
        entry_from_row,
    )?;
    rows.map(|r| r.map(|(seq, e, _, _)| (seq, e)).map_err(Error::from))
        .collect()
}

/// The workstations (with their tenants) whose offline code `user` has been shown: what an
/// offboarding must replace.
pub fn offline_codes_seen(
    r: &Reader<'_>,
    user: crate::ids::UserId,
) -> Result<Vec<(crate::ids::TenantId, crate::ids::DeviceId)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT DISTINCT tenant_id, device_id FROM audit
         WHERE event = 'sensitive_read' AND actor_id = :u AND device_id IS NOT NULL
           AND json_extract(details, '$.what') = 'offline_code'",
    )?;
    let rows = st.query_map(named_params! {":u": user.to_string()}, |r| {
        Ok((
            r.get::<_, String>("tenant_id")?,
            r.get::<_, String>("device_id")?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (t, d) = row?;
        if let (Some(t), Some(d)) = (
            crate::ids::TenantId::parse(&t),
            crate::ids::DeviceId::parse(&d),
        ) {
            out.push((t, d));
        }
    }
    Ok(out)
}

/// The sensitive reads (password reveals, offline-code views) on one workstation, newest
/// first, with the reader's email when it was a person.
pub fn sensitive_reads(
    r: &Reader<'_>,
    scope: &crate::authz::TenantScope,
    device: &str,
    limit: u32,
) -> Result<Vec<(Entry, Option<String>)>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit WHERE tenant_id = :t AND device_id = :d AND event = 'sensitive_read'
         ORDER BY seq DESC LIMIT :limit"
    ))?;
    let rows = st
        .query_map(
            named_params! {":t": scope.tenant().to_string(), ":d": device, ":limit": limit.clamp(1, 500)},
            entry_from_row,
        )?
        .map(|r| r.map(|(_, e, _, _)| e))
        .collect::<rusqlite::Result<Vec<Entry>>>()?;
    let mut email = r
        .conn
        .prepare_cached("SELECT email FROM users WHERE id = :id")?;
    rows.into_iter()
        .map(|e| {
            let who = match &e.actor_id {
                Some(id) => email
                    .query_row(named_params! {":id": id}, |r| r.get(0))
                    .optional()?,
                None => None,
            };
            Ok((e, who))
        })
        .collect()
}

/// How many entries carry `event` (all tenants).
pub fn count_event(r: &Reader<'_>, event: &str) -> Result<i64> {
    let mut st = r
        .conn
        .prepare_cached("SELECT count(*) FROM audit WHERE event = :event")?;
    Ok(st.query_row(named_params! {":event": event}, |r| r.get(0))?)
}
