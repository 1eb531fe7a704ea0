//! Technician login sessions, escrowed passwords, offline secrets and shared accounts.

use rusqlite::{OptionalExtension, Row, named_params};

use super::hot::Note;
use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{CommandId, DeviceId, LoginId, TenantId, UserId};
use crate::model::logins::Credential;
use crate::model::logins::Login;
use crate::model::logins::{HISTORY, State};

const COLUMNS: &str = "l.id, l.tenant_id, l.device_id, d.hostname, l.user_id, u.email, l.account, l.state,
    l.minutes, l.ticket, l.revealed, l.version, l.created_at, l.started_at, l.expires_at, l.ended_at, l.ended_by, l.failure";
const FROM: &str =
    "FROM logins l JOIN devices d ON d.id = l.device_id JOIN users u ON u.id = l.user_id";

fn row(r: &Row<'_>) -> rusqlite::Result<Login> {
    let state: String = r.get("state")?;
    Ok(Login {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        device_id: r.get("device_id")?,
        hostname: r.get("hostname")?,
        user_id: r.get("user_id")?,
        email: r.get("email")?,
        account: r.get("account")?,
        state: State::parse(&state).unwrap_or(State::Failed),
        minutes: r.get("minutes")?,
        ticket: r.get("ticket")?,
        revealed: r.get("revealed")?,
        version: r.get("version")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        expires_at: r.get("expires_at")?,
        ended_at: r.get("ended_at")?,
        ended_by: r.get("ended_by")?,
        failure: r.get("failure")?,
    })
}

pub struct NewLogin<'a> {
    pub id: LoginId,
    pub device: DeviceId,
    pub user: UserId,
    pub account: &'a str,
    pub minutes: u32,
    pub ticket: Option<&'a str>,
    pub expires_at: Timestamp,
}

/// Inserts a waiting session; a second open one for the account on the workstation is a
/// Conflict naming who holds it.
pub fn insert(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    n: &NewLogin<'_>,
    now: Timestamp,
) -> Result<()> {
    let res = tx
        .conn()
        .prepare_cached(
            "INSERT INTO logins (id, tenant_id, device_id, user_id, account, state, minutes, ticket, created_at, expires_at)
             VALUES (:id, :t, :d, :u, :a, 'waiting', :m, :ticket, :now, :exp)",
        )?
        .execute(named_params! {":id": n.id, ":t": scope.tenant(), ":d": n.device, ":u": n.user,
            ":a": n.account, ":m": n.minutes, ":ticket": n.ticket, ":now": now, ":exp": n.expires_at});
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let holder: Option<(String, Timestamp)> = tx
                .conn()
                .prepare_cached(
                    "SELECT u.email, l.expires_at FROM logins l JOIN users u ON u.id = l.user_id
                     WHERE l.device_id = :d AND l.account = :a AND l.state IN ('waiting', 'active')",
                )?
                .query_row(named_params! {":d": n.device, ":a": n.account}, |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let (who, until) = holder.map(|(w, u)| (w, u.rfc3339())).unwrap_or_default();
            Err(Error::Conflict(format!(
                "account {} is already in use on this workstation by {who} until {until}",
                n.account
            )))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: LoginId) -> Result<Login> {
    r.conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} {FROM} WHERE l.id = :id AND l.tenant_id = :t"
        ))?
        .query_row(named_params! {":id": id, ":t": scope.tenant()}, row)
        .optional()?
        .ok_or(Error::NotFound)
}

/// Sessions of a tenant, newest first, optionally of one workstation.
pub fn list(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: Option<DeviceId>,
    limit: u32,
) -> Result<Vec<Login>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE l.tenant_id = :t AND (:d IS NULL OR l.device_id = :d)
         ORDER BY l.created_at DESC LIMIT :n"
    ))?;
    let rows = st.query_map(
        named_params! {":t": scope.tenant(), ":d": device, ":n": limit.clamp(1, 500)},
        row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Open sessions past their deadline (any tenant: the sweep).
pub fn due(r: &Reader<'_>, now: Timestamp, limit: u32) -> Result<Vec<Login>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE l.state IN ('waiting', 'active') AND l.expires_at <= :now
         ORDER BY l.expires_at LIMIT :n"
    ))?;
    let rows = st.query_map(named_params! {":now": now, ":n": limit}, row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every open (waiting or active) session, of every tenant (a restore reconciles them).
pub fn all_open(r: &Reader<'_>) -> Result<Vec<Login>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE l.state IN ('waiting', 'active') ORDER BY l.created_at"
    ))?;
    let rows = st.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A person's open (waiting or active) sessions in every tenant (offboarding ends them).
pub fn open_of(r: &Reader<'_>, user: UserId) -> Result<Vec<Login>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} {FROM} WHERE l.user_id = :u AND l.state IN ('waiting', 'active') ORDER BY l.created_at"
    ))?;
    let rows = st.query_map(named_params! {":u": user}, row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves a session on if nobody else did first; false when it lost the race.
pub fn transition(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    l: &Login,
    to: State,
    ended_by: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE logins SET state = :to, version = version + 1,
                started_at = CASE WHEN :to = 'active' THEN :now ELSE started_at END,
                ended_at = CASE WHEN :to IN ('ended', 'expired', 'revoked', 'failed') THEN :now ELSE ended_at END,
                ended_by = coalesce(:by, ended_by)
             WHERE id = :id AND tenant_id = :t AND version = :v",
        )?
        .execute(named_params! {":to": to.as_str(), ":now": now, ":by": ended_by, ":id": l.id,
            ":t": scope.tenant(), ":v": l.version})?;
    Ok(n == 1)
}

/// Keeps the workstation's reason for refusing a login.
pub fn set_failure(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: LoginId,
    failure: &str,
) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE logins SET failure = :f WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":f": failure, ":id": id, ":t": scope.tenant()})?;
    Ok(())
}

/// Marks the one-time view of the password as used; false if it already was (CRED-06).
pub fn mark_revealed(tx: &WriteTx<'_>, scope: &TenantScope, id: LoginId) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE logins SET revealed = 1 WHERE id = :id AND tenant_id = :t AND revealed = 0",
        )?
        .execute(named_params! {":id": id, ":t": scope.tenant()})?;
    Ok(n == 1)
}

/// Whether the person has had an online session on the workstation (offline-code access).
pub fn has_logged_in(r: &Reader<'_>, device: DeviceId, user: UserId) -> Result<bool> {
    Ok(r.conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM logins WHERE device_id = :d AND user_id = :u AND started_at IS NOT NULL)",
        )?
        .query_row(named_params! {":d": device, ":u": user}, |r| r.get(0))?)
}

// --- escrowed passwords ------------------------------------------------------------------

const CRED_COLUMNS: &str = "id, tenant_id, device_id, account, login_id, command_id, reason, state,
    password_sealed, created_at, activated_at";

fn cred(r: &Row<'_>) -> rusqlite::Result<Credential> {
    Ok(Credential {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        device_id: r.get("device_id")?,
        account: r.get("account")?,
        login_id: r.get("login_id")?,
        command_id: r.get("command_id")?,
        reason: r.get("reason")?,
        state: r.get("state")?,
        password_sealed: r.get("password_sealed")?,
        created_at: r.get("created_at")?,
        activated_at: r.get("activated_at")?,
    })
}

pub fn insert_credential(tx: &WriteTx<'_>, scope: &TenantScope, c: &Credential) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO credentials (id, tenant_id, device_id, account, login_id, command_id, reason, state,
                password_sealed, created_at)
             VALUES (:id, :t, :d, :a, :l, :c, :r, 'pending', :p, :now)",
        )?
        .execute(named_params! {":id": c.id, ":t": scope.tenant(), ":d": c.device_id, ":a": c.account,
            ":l": c.login_id, ":c": c.command_id, ":r": c.reason, ":p": c.password_sealed, ":now": c.created_at})?;
    tx.note(Note::Versions);
    Ok(())
}

pub fn set_credential_command(tx: &WriteTx<'_>, id: &str, command: CommandId) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE credentials SET command_id = :c WHERE id = :id")?
        .execute(named_params! {":c": command, ":id": id})?;
    Ok(())
}

pub fn credential_by_command(r: &Reader<'_>, command: CommandId) -> Result<Option<Credential>> {
    Ok(r.conn
        .prepare_cached(&format!(
            "SELECT {CRED_COLUMNS} FROM credentials WHERE command_id = :c"
        ))?
        .query_row(named_params! {":c": command}, cred)
        .optional()?)
}

pub fn credential_of_login(
    r: &Reader<'_>,
    scope: &TenantScope,
    login: LoginId,
) -> Result<Credential> {
    r.conn
        .prepare_cached(&format!(
            "SELECT {CRED_COLUMNS} FROM credentials WHERE login_id = :l AND tenant_id = :t AND reason = 'login'"
        ))?
        .query_row(named_params! {":l": login, ":t": scope.tenant()}, cred)
        .optional()?
        .ok_or(Error::NotFound)
}

/// The agent confirmed the password: it becomes current, the previous current one old, and
/// only the newest `HISTORY` old versions keep their ciphertext (CRED-02). Returns how many
/// were purged.
pub fn activate(tx: &WriteTx<'_>, c: &Credential, now: Timestamp) -> Result<usize> {
    let conn = tx.conn();
    conn.prepare_cached(
        "UPDATE credentials SET state = 'old' WHERE device_id = :d AND account = :a AND state = 'current'",
    )?
    .execute(named_params! {":d": c.device_id, ":a": c.account})?;
    conn.prepare_cached(
        "UPDATE credentials SET state = 'current', activated_at = :now WHERE id = :id",
    )?
    .execute(named_params! {":now": now, ":id": c.id})?;
    let purged = conn
        .prepare_cached(
            "UPDATE credentials SET password_sealed = NULL
             WHERE device_id = :d AND account = :a AND state = 'old' AND password_sealed IS NOT NULL
               AND id NOT IN (SELECT id FROM credentials WHERE device_id = :d AND account = :a AND state = 'old'
                              ORDER BY activated_at DESC, created_at DESC LIMIT :keep)",
        )?
        .execute(named_params! {":d": c.device_id, ":a": c.account, ":keep": HISTORY as i64})?;
    tx.note(Note::Versions);
    Ok(purged)
}

/// Every (tenant, workstation, account) with an escrowed current password, on active
/// workstations.
pub fn escrowed_accounts(r: &Reader<'_>) -> Result<Vec<(TenantId, DeviceId, String)>> {
    let mut st = r.conn.prepare(
        "SELECT DISTINCT c.tenant_id, c.device_id, c.account FROM credentials c
         JOIN devices d ON d.id = c.device_id
         WHERE c.state = 'current' AND d.status = 'active' ORDER BY c.device_id, c.account",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Rows changed in `credentials`: the poll path's version lists are read again.
fn versions_changed(tx: &WriteTx<'_>, n: usize) -> usize {
    if n > 0 {
        tx.note(Note::Versions);
    }
    n
}

/// After a restore: passwords whose orders are still queued in the copy will never be sent
/// (the orders are dropped), so they fail and are forgotten.
pub fn fail_all_undelivered(tx: &WriteTx<'_>) -> Result<u64> {
    Ok(tx
        .conn()
        .prepare_cached(
            "UPDATE credentials SET state = 'failed', password_sealed = NULL
             WHERE state = 'pending' AND command_id IN (SELECT id FROM commands WHERE state = 'queued')",
        )?
        .execute([])
        .map(|n| versions_changed(tx, n))? as u64)
}

/// Passwords whose command is about to expire undelivered never reached the workstation:
/// they fail (and are forgotten), so they no longer count as on their way (CRED-05).
pub fn fail_undelivered(tx: &WriteTx<'_>, now: crate::clock::Timestamp) -> Result<u64> {
    Ok(tx
        .conn()
        .prepare_cached(
            "UPDATE credentials SET state = 'failed', password_sealed = NULL
             WHERE state = 'pending' AND command_id IN
                 (SELECT id FROM commands WHERE state = 'queued' AND not_after <= :now)",
        )?
        .execute(named_params! {":now": now})
        .map(|n| versions_changed(tx, n))? as u64)
}

pub fn fail_credential(tx: &WriteTx<'_>, id: &str) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE credentials SET state = 'failed', password_sealed = NULL WHERE id = :id",
        )?
        .execute(named_params! {":id": id})?;
    tx.note(Note::Versions);
    Ok(())
}

/// A workstation's password history, newest first (never the passwords).
pub fn credentials(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: DeviceId,
) -> Result<Vec<Credential>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {CRED_COLUMNS} FROM credentials WHERE tenant_id = :t AND device_id = :d ORDER BY created_at DESC LIMIT 100"
    ))?;
    let rows = st.query_map(named_params! {":t": scope.tenant(), ":d": device}, cred)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// --- offline secrets and shared accounts ------------------------------------------------

#[derive(Clone, Debug)]
pub struct OfflineSecret {
    pub id: String,
    pub tenant_id: TenantId,
    pub device_id: Option<DeviceId>,
    pub secret_sealed: Vec<u8>,
    pub created_at: Timestamp,
}

fn secret(r: &Row<'_>) -> rusqlite::Result<OfflineSecret> {
    Ok(OfflineSecret {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        device_id: r.get("device_id")?,
        secret_sealed: r.get("secret_sealed")?,
        created_at: r.get("created_at")?,
    })
}

/// The current secret of a workstation (`Some(device)`) or of the tenant (`None`).
pub fn current_secret(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: Option<DeviceId>,
) -> Result<Option<OfflineSecret>> {
    Ok(r.conn
        .prepare_cached(
            "SELECT id, tenant_id, device_id, secret_sealed, created_at FROM offline_secrets
             WHERE tenant_id = :t AND coalesce(device_id, '') = coalesce(:d, '') AND state = 'current'",
        )?
        .query_row(named_params! {":t": scope.tenant(), ":d": device}, secret)
        .optional()?)
}

/// Replaces the current secret (the old one is kept as `old`).
pub fn put_secret(tx: &WriteTx<'_>, scope: &TenantScope, s: &OfflineSecret) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "UPDATE offline_secrets SET state = 'old'
         WHERE tenant_id = :t AND coalesce(device_id, '') = coalesce(:d, '') AND state = 'current'",
    )?
    .execute(named_params! {":t": scope.tenant(), ":d": s.device_id})?;
    conn.prepare_cached(
        "INSERT INTO offline_secrets (id, tenant_id, device_id, secret_sealed, state, created_at)
         VALUES (:id, :t, :d, :s, 'current', :now)",
    )?
    .execute(
        named_params! {":id": s.id, ":t": scope.tenant(), ":d": s.device_id, ":s": s.secret_sealed,
        ":now": s.created_at},
    )?;
    Ok(())
}

/// Shared (tenant) secrets created before `before` (the 30-day rotation).
pub fn stale_shared_secrets(r: &Reader<'_>, before: Timestamp) -> Result<Vec<OfflineSecret>> {
    let mut st = r.conn.prepare_cached(
        "SELECT s.id, s.tenant_id, s.device_id, s.secret_sealed, s.created_at FROM offline_secrets s
         JOIN tenants t ON t.id = s.tenant_id
         WHERE s.device_id IS NULL AND s.state = 'current' AND s.created_at < :b AND t.login_mode = 'shared'",
    )?;
    let rows = st.query_map(named_params! {":b": before}, secret)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn shared_account(r: &Reader<'_>, scope: &TenantScope) -> Result<Option<String>> {
    Ok(r.conn
        .prepare_cached("SELECT account FROM shared_accounts WHERE tenant_id = :t")?
        .query_row(named_params! {":t": scope.tenant()}, |r| r.get(0))
        .optional()?)
}

/// Claims `account` for the tenant; false when another tenant has it already.
pub fn claim_shared_account(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    account: &str,
    now: Timestamp,
) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "INSERT INTO shared_accounts (tenant_id, account, created_at) VALUES (:t, :a, :now)
             ON CONFLICT DO NOTHING",
        )?
        .execute(named_params! {":t": scope.tenant(), ":a": account, ":now": now})?;
    Ok(n == 1)
}

/// Whether a login session (waiting or active) covers this account on this workstation.
pub fn is_open(r: &Reader<'_>, device: DeviceId, account: &str) -> Result<bool> {
    Ok(r.conn
        .prepare_cached(
            "SELECT 1 FROM logins WHERE device_id = :d AND account = :a AND state IN ('waiting', 'active')",
        )?
        .query_row(named_params! {":d": device, ":a": account}, |_| Ok(()))
        .optional()?
        .is_some())
}

/// A managed account's log-on outside any session, waiting out its grace period.
#[derive(Clone, Debug)]
pub struct Stray {
    pub id: String,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub account: String,
    pub seen_at: Timestamp,
}

/// Records a stray log-on unless one is already pending for (device, account).
pub fn insert_stray(tx: &WriteTx<'_>, s: &Stray, due: Timestamp) -> Result<bool> {
    Ok(tx
        .conn()
        .prepare_cached(
            "INSERT INTO stray_logons (id, tenant_id, device_id, account, seen_at, due_at, state)
             VALUES (:id, :t, :d, :a, :seen, :due, 'pending') ON CONFLICT DO NOTHING",
        )?
        .execute(named_params! {
            ":id": s.id, ":t": s.tenant_id, ":d": s.device_id, ":a": s.account, ":seen": s.seen_at, ":due": due,
        })?
        == 1)
}

pub fn due_strays(r: &Reader<'_>, now: Timestamp, limit: u32) -> Result<Vec<Stray>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, tenant_id, device_id, account, seen_at FROM stray_logons
         WHERE state = 'pending' AND due_at <= :now ORDER BY due_at LIMIT :n",
    )?;
    let rows = st.query_map(named_params! {":now": now, ":n": limit}, |r| {
        Ok(Stray {
            id: r.get("id")?,
            tenant_id: r.get("tenant_id")?,
            device_id: r.get("device_id")?,
            account: r.get("account")?,
            seen_at: r.get("seen_at")?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Settles a pending stray log-on (`rotated` or `cleared`); false when already settled.
pub fn settle_stray(tx: &WriteTx<'_>, id: &str, to: &str) -> Result<bool> {
    Ok(tx
        .conn()
        .prepare_cached("UPDATE stray_logons SET state = :to WHERE id = :id AND state = 'pending'")?
        .execute(named_params! {":to": to, ":id": id})?
        == 1)
}

/// Per account escrowed for a workstation: the current password's version id (if any) and
/// whether a newer one is on its way to the agent (CRED-05).
pub fn versions(r: &Reader<'_>, device: DeviceId) -> Result<Vec<(String, Option<String>, bool)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT account, max(CASE WHEN state = 'current' THEN id END), max(state = 'pending')
         FROM credentials WHERE device_id = :d GROUP BY account",
    )?;
    let rows = st.query_map(named_params! {":d": device}, |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
