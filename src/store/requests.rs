//! Endpoint users, JIT requests and auto-approval rules.

use rusqlite::{OptionalExtension, Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, RequestId, UserId};
use crate::model::requests::Request;
use crate::model::requests::{AutoRule, Grant, Kind, State};

/// The endpoint user for (device, account), created on first request.
pub fn endpoint_user(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    device: DeviceId,
    account: &str,
    now: Timestamp,
) -> Result<String> {
    let id = format!("eu-{}", uuid::Uuid::now_v7().simple());
    tx.conn()
        .prepare_cached(
            "INSERT INTO endpoint_users (id, tenant_id, device_id, account, created_at) VALUES (:id, :t, :d, :a, :now)
             ON CONFLICT (device_id, account) DO NOTHING",
        )?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":d": device, ":a": account, ":now": now})?;
    Ok(tx
        .conn()
        .prepare_cached("SELECT id FROM endpoint_users WHERE device_id = :d AND account = :a AND tenant_id = :t")?
        .query_row(named_params! {":d": device, ":a": account, ":t": scope.tenant()}, |r| r.get(0))?)
}

const COLUMNS: &str = "r.id, r.tenant_id, r.device_id, r.endpoint_user_id, e.account, d.hostname, r.kind, r.parent_id,
    r.minutes_requested, r.minutes_approved, r.justification, r.ticket, r.state, r.version, r.decided_by, r.decided_by_rule,
    r.reason, r.created_at, r.decided_at, r.expires_at, r.ended_at, r.app, r.grant_scope, r.policy_id, r.granted_at, r.failure";
const FROM: &str = "FROM requests r JOIN endpoint_users e ON e.id = r.endpoint_user_id JOIN devices d ON d.id = r.device_id";

fn row(r: &Row<'_>) -> rusqlite::Result<Request> {
    let state: String = r.get("state")?;
    Ok(Request {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        device_id: r.get("device_id")?,
        endpoint_user_id: r.get("endpoint_user_id")?,
        account: r.get("account")?,
        hostname: r.get("hostname")?,
        kind: Kind::parse(&r.get::<_, String>("kind")?).unwrap_or(Kind::Admin),
        parent_id: r.get("parent_id")?,
        minutes_requested: r.get("minutes_requested")?,
        minutes_approved: r.get("minutes_approved")?,
        justification: r.get("justification")?,
        ticket: r.get("ticket")?,
        state: State::parse(&state).unwrap_or(State::Cancelled),
        version: r.get("version")?,
        decided_by: r.get("decided_by")?,
        decided_by_rule: r.get("decided_by_rule")?,
        reason: r.get("reason")?,
        created_at: r.get("created_at")?,
        decided_at: r.get("decided_at")?,
        expires_at: r.get("expires_at")?,
        ended_at: r.get("ended_at")?,
        app: r
            .get::<_, Option<String>>(21)?
            .and_then(|a| serde_json::from_str(&a).ok()),
        grant_scope: r
            .get::<_, Option<String>>("grant_scope")?
            .and_then(|g| Grant::parse(&g).ok()),
        policy_id: r.get("policy_id")?,
        granted_at: r.get("granted_at")?,
        failure: r.get("failure")?,
    })
}

pub struct NewRequest<'a> {
    pub id: RequestId,
    pub device: DeviceId,
    pub endpoint_user: &'a str,
    pub kind: Kind,
    pub parent: Option<RequestId>,
    pub minutes: u32,
    pub justification: &'a str,
    pub ticket: Option<&'a str>,
    pub state: State,
    pub reason: Option<&'a str>,
    /// JSON of the program's attributes (application requests).
    pub app: Option<&'a str>,
}

/// Inserts a request; a second open admin request of the same person is refused by the
/// partial unique index (JIT-04), answered as a Conflict naming the open one.
pub fn insert(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    n: &NewRequest<'_>,
    now: Timestamp,
) -> Result<()> {
    let r = tx
        .conn()
        .prepare_cached(
            "INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested, justification,
                ticket, state, reason, app, created_at, decided_at)
             VALUES (:id, :t, :d, :eu, :kind, :parent, :m, :j, :ticket, :state, :reason, :app, :now,
                CASE WHEN :state = 'pending' THEN NULL ELSE :now END)",
        )?
        .execute(named_params! {
            ":id": n.id, ":t": scope.tenant(), ":d": n.device, ":eu": n.endpoint_user, ":kind": n.kind.as_str(), ":parent": n.parent,
            ":m": n.minutes, ":j": n.justification, ":ticket": n.ticket, ":state": n.state.as_str(), ":reason": n.reason, ":app": n.app, ":now": now,
        });
    match r {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let open = open_for(&tx.reader(), scope, n.endpoint_user)?;
            Err(Error::Conflict(match open {
                Some(o) => format!(
                    "You already have an open request ({}, {}); end it or wait for a decision first.",
                    o.id,
                    o.state.as_str()
                ),
                None => "You already have an open request.".into(),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn open_for(
    r: &Reader<'_>,
    scope: &TenantScope,
    endpoint_user: &str,
) -> Result<Option<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE r.tenant_id = :t AND r.endpoint_user_id = :eu AND r.kind = 'admin'
           AND r.state IN ('pending', 'approved')"
    ))?;
    Ok(st
        .query_row(
            named_params! {":t": scope.tenant(), ":eu": endpoint_user},
            row,
        )
        .optional()?)
}

/// Open requests (waiting, or running sessions) asked from workstation accounts linked to
/// `user`, in every tenant: an offboarding ends them wherever the person is linked.
pub fn open_of_linked(r: &Reader<'_>, user: UserId, now: Timestamp) -> Result<Vec<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE e.user_id = :u AND r.kind != 'extension'
           AND (r.state = 'pending' OR (r.state = 'approved' AND r.expires_at > :now))"
    ))?;
    let rows = st.query_map(named_params! {":u": user, ":now": now}, row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: RequestId) -> Result<Request> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE r.id = :id AND r.tenant_id = :t"
    ))?;
    st.query_row(named_params! {":id": id, ":t": scope.tenant()}, row)
        .optional()?
        .ok_or(Error::NotFound)
}

/// The requests of one device (what its agent may read).
pub fn for_device(r: &Reader<'_>, device: DeviceId, id: RequestId) -> Result<Option<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE r.id = :id AND r.device_id = :d"
    ))?;
    Ok(st
        .query_row(named_params! {":id": id, ":d": device}, row)
        .optional()?)
}

/// Which requests a list shows: a state, a local account or workstation name, a ticket.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub state: Option<String>,
    /// Matches the account, the workstation's host name or the ticket exactly.
    pub who: Option<String>,
}

pub fn list(r: &Reader<'_>, scope: &TenantScope, f: &Filter, limit: u32) -> Result<Vec<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE r.tenant_id = :t AND (:s IS NULL OR r.state = :s)
            AND (:w IS NULL OR e.account = :w OR d.hostname = :w OR r.ticket = :w)
         ORDER BY r.created_at DESC LIMIT :n"
    ))?;
    let rows = st.query_map(
        named_params! {":t": scope.tenant(), ":s": f.state, ":w": f.who, ":n": limit.clamp(1, 500)},
        row,
    )?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Pending and active sessions of a tenant (dashboard and badge).
pub fn counts(r: &Reader<'_>, scope: &TenantScope) -> Result<(i64, i64)> {
    Ok(r.conn
        .prepare_cached(
            "SELECT COUNT(*) FILTER (WHERE state = 'pending'),
                    COUNT(*) FILTER (WHERE state = 'approved' AND kind = 'admin')
             FROM requests WHERE tenant_id = :t AND state IN ('pending', 'approved')",
        )?
        .query_row(named_params! {":t": scope.tenant()}, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?)
}

/// Moves a request from `from` to `to` only if nobody else did first (JIT-03: optimistic
/// concurrency on the version); false when it lost the race.
#[allow(clippy::too_many_arguments)] // one UPDATE, each value a column
pub fn transition(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: RequestId,
    version: i64,
    from: State,
    to: State,
    decided_by: Option<UserId>,
    rule: Option<&str>,
    minutes: Option<u32>,
    reason: Option<&str>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<bool> {
    let ended = matches!(to, State::Expired | State::EndedByUser | State::Revoked);
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE requests SET state = :to, version = version + 1,
                decided_by = coalesce(:by, decided_by), decided_by_rule = coalesce(:rule, decided_by_rule),
                minutes_approved = coalesce(:m, minutes_approved), reason = coalesce(:reason, reason),
                expires_at = coalesce(:exp, expires_at),
                decided_at = CASE WHEN :ended THEN decided_at ELSE :now END,
                ended_at = CASE WHEN :ended THEN :now ELSE ended_at END
             WHERE id = :id AND tenant_id = :t AND state = :from AND version = :v",
        )?
        .execute(named_params! {
            ":to": to.as_str(), ":by": decided_by, ":rule": rule, ":m": minutes, ":reason": reason, ":exp": expires_at,
            ":ended": ended, ":now": now, ":id": id, ":t": scope.tenant(), ":from": from.as_str(), ":v": version,
        })?;
    Ok(n == 1)
}

/// Records the policy an approved application request created.
pub fn set_policy(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: RequestId,
    grant_scope: Grant,
    policy: &str,
) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE requests SET grant_scope = :g, policy_id = :p WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":g": grant_scope.as_str(), ":p": policy, ":id": id, ":t": scope.tenant()})?;
    Ok(())
}

/// A pending application request of this endpoint user for the same program, if any.
pub fn pending_app(
    r: &Reader<'_>,
    scope: &TenantScope,
    endpoint_user: &str,
    sha256: &str,
) -> Result<Option<RequestId>> {
    Ok(r.conn
        .prepare_cached(
            "SELECT id FROM requests WHERE tenant_id = :t AND endpoint_user_id = :eu AND kind = 'application'
               AND state = 'pending' AND app ->> '$.sha256' = :sha",
        )?
        .query_row(named_params! {":t": scope.tenant(), ":eu": endpoint_user, ":sha": sha256}, |r| r.get(0))
        .optional()?)
}

/// Moves an active session's deadline (an approved extension).
pub fn extend(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: RequestId,
    expires_at: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE requests SET expires_at = :e, version = version + 1 WHERE id = :id AND tenant_id = :t AND state = 'approved'")?
        .execute(named_params! {":e": expires_at, ":id": id, ":t": scope.tenant()})?;
    Ok(())
}

/// Due work across tenants (the sweep): pending past their tenant's timeout, active past expiry.
pub fn due(r: &Reader<'_>, now: Timestamp, limit: u32) -> Result<Vec<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} JOIN tenants t ON t.id = r.tenant_id
         WHERE (r.state = 'approved' AND r.kind IN ('admin', 'application') AND r.expires_at <= :now)
            OR (r.state = 'pending' AND r.created_at + t.jit_pending_timeout_minutes * 60000 <= :now)
         LIMIT :n"
    ))?;
    let rows = st.query_map(named_params! {":now": now, ":n": limit}, row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn rules(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<AutoRule>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, name, account, device_id, max_minutes, from_minute, to_minute FROM auto_approval_rules WHERE tenant_id = :t ORDER BY name",
    )?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, |r| {
        Ok(AutoRule {
            id: r.get("id")?,
            name: r.get("name")?,
            account: r.get("account")?,
            device_id: r.get("device_id")?,
            max_minutes: r.get("max_minutes")?,
            from_minute: r.get("from_minute")?,
            to_minute: r.get("to_minute")?,
        })
    })?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn insert_rule(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    rule: &AutoRule,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO auto_approval_rules (id, tenant_id, name, account, device_id, max_minutes, from_minute, to_minute, created_at)
             VALUES (:id, :t, :n, :a, :d, :m, :f, :to, :now)",
        )?
        .execute(named_params! {
            ":id": rule.id, ":t": scope.tenant(), ":n": rule.name, ":a": rule.account, ":d": rule.device_id,
            ":m": rule.max_minutes, ":f": rule.from_minute, ":to": rule.to_minute, ":now": now,
        })?;
    Ok(())
}

pub fn delete_rule(tx: &WriteTx<'_>, scope: &TenantScope, id: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM auto_approval_rules WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":id": id, ":t": scope.tenant()})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// A local account that asked for rights on a workstation, and the tenant user it belongs
/// to when an admin linked one.
#[derive(Clone, Debug)]
pub struct EndpointUser {
    pub id: String,
    pub device_id: DeviceId,
    pub hostname: String,
    pub account: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub created_at: Timestamp,
}

pub fn endpoint_users(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<EndpointUser>> {
    let mut st = r.conn.prepare_cached(
        "SELECT e.id, e.device_id, d.hostname, e.account, e.user_id, u.email, e.created_at
         FROM endpoint_users e JOIN devices d ON d.id = e.device_id LEFT JOIN users u ON u.id = e.user_id
         WHERE e.tenant_id = :t ORDER BY e.account, d.hostname LIMIT 1000",
    )?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, |r| {
        Ok(EndpointUser {
            id: r.get("id")?,
            device_id: r.get("device_id")?,
            hostname: r.get("hostname")?,
            account: r.get("account")?,
            user_id: r.get("user_id")?,
            user_email: r.get("email")?,
            created_at: r.get("created_at")?,
        })
    })?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Links an endpoint user to a tenant user (None unlinks), keeping the history of links;
/// NotFound outside the tenant.
pub fn link_endpoint_user(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: &str,
    user: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE endpoint_users SET user_id = :u WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":u": user, ":id": id, ":t": scope.tenant()})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    tx.conn()
        .prepare_cached(
            "UPDATE endpoint_user_links SET unlinked_at = :now
             WHERE endpoint_user_id = :id AND tenant_id = :t AND unlinked_at IS NULL",
        )?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":now": now})?;
    if let Some(u) = user {
        tx.conn()
            .prepare_cached(
                "INSERT INTO endpoint_user_links (endpoint_user_id, tenant_id, user_id, linked_at)
                 VALUES (:id, :t, :u, :now)",
            )?
            .execute(named_params! {":id": id, ":t": scope.tenant(), ":u": u, ":now": now})?;
    }
    Ok(())
}

/// Everyone the endpoint user has been linked to at any time since `since`.
pub fn linked_since(r: &Reader<'_>, endpoint_user: &str, since: Timestamp) -> Result<Vec<String>> {
    let mut st = r.conn.prepare_cached(
        "SELECT DISTINCT user_id FROM endpoint_user_links
         WHERE endpoint_user_id = :id AND (unlinked_at IS NULL OR unlinked_at >= :since)",
    )?;
    let rows = st.query_map(named_params! {":id": endpoint_user, ":since": since}, |r| {
        r.get(0)
    })?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// The tenant user an endpoint user is linked to, if any.
pub fn linked_user(r: &Reader<'_>, endpoint_user: &str) -> Result<Option<String>> {
    Ok(r.conn
        .prepare_cached("SELECT user_id FROM endpoint_users WHERE id = :id")?
        .query_row(named_params! {":id": endpoint_user}, |r| r.get(0))
        .optional()?
        .flatten())
}

/// The workstation confirmed the grant of an approved request (its first confirmation counts).
pub fn mark_granted(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: RequestId,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE requests SET granted_at = :now
             WHERE id = :id AND tenant_id = :t AND state = 'approved' AND granted_at IS NULL",
        )?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":now": now})?;
    Ok(n == 1)
}

/// An approved request whose grant the workstation could not carry out ends `failed` with
/// its reason; false when it was no longer approved.
pub fn fail_grant(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: RequestId,
    failure: &str,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE requests SET state = 'failed', failure = :f, ended_at = :now, version = version + 1
             WHERE id = :id AND tenant_id = :t AND state = 'approved'",
        )?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":f": failure, ":now": now})?;
    Ok(n == 1)
}

/// Every approved (running) session that is not an extension, of every tenant (a restore
/// reconciles them).
pub fn all_running(r: &Reader<'_>) -> Result<Vec<Request>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE r.state = 'approved' AND r.kind != 'extension'
         ORDER BY r.created_at"
    ))?;
    let rows = st.query_map([], row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// (device, account) of every grant running now in the tenant.
pub fn granted_accounts(
    r: &Reader<'_>,
    scope: &TenantScope,
    now: Timestamp,
) -> Result<Vec<(DeviceId, String)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT q.device_id, e.account FROM requests q JOIN endpoint_users e ON e.id = q.endpoint_user_id
         WHERE q.tenant_id = :t AND q.state = 'approved' AND q.expires_at > :now",
    )?;
    let rows = st.query_map(named_params! {":t": scope.tenant(), ":now": now}, |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
