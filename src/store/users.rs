//! People, their roles and sign-in state.

use rusqlite::{OptionalExtension, Row, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::model::users::User;
use crate::model::users::{Email, UserStatus, Username};

/// What sign-in needs, including secrets (only ever sealed or hashed).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub totp_sealed: Option<Vec<u8>>,
    pub totp_failures: i64,
    pub totp_window_start: Timestamp,
    pub totp_window_count: i64,
    pub login_failures: i64,
    pub last_failure_at: Timestamp,
}

const COLUMNS: &str =
    "id, tenant_id, email, first_name, last_name, username, status, mfa_locked, login_locked,
    mfa_pause_until, mfa_pause_next, all_tenants, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let status: String = r.get("status")?;
    Ok(User {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        email: r.get("email")?,
        first_name: r.get("first_name")?,
        last_name: r.get("last_name")?,
        username: r.get("username")?,
        status: UserStatus::parse(&status).unwrap_or(UserStatus::Disabled),
        mfa_locked: r.get("mfa_locked")?,
        login_locked: r.get("login_locked")?,
        mfa_pause_until: r.get("mfa_pause_until")?,
        mfa_pause_next: r.get("mfa_pause_next")?,
        all_tenants: r.get("all_tenants")?,
        created_at: r.get("created_at")?,
    })
}

/// Unscoped: sign-in looks people up by email before anything is authorized.
pub fn credentials_by_email(r: &Reader<'_>, email: &str) -> Result<Option<Credentials>> {
    credentials_where(r, "email = :k", email)
}

/// Unscoped: the signed-in principal's own record.
pub fn credentials_by_id(r: &Reader<'_>, id: UserId) -> Result<Option<Credentials>> {
    credentials_where(r, "id = :k", &id.to_string())
}

fn credentials_where(r: &Reader<'_>, cond: &str, key: &str) -> Result<Option<Credentials>> {
    let sql = format!(
        "SELECT {COLUMNS}, password_hash, totp_sealed, totp_failures, totp_window_start, totp_window_count,
                login_failures, last_failure_at FROM users WHERE {cond}"
    );
    let mut st = r.conn.prepare_cached(&sql)?;
    Ok(st
        .query_row(named_params! {":k": key}, |r| {
            Ok(Credentials {
                user: from_row(r)?,
                password_hash: r.get("password_hash")?,
                totp_sealed: r.get("totp_sealed")?,
                totp_failures: r.get("totp_failures")?,
                totp_window_start: r.get("totp_window_start")?,
                totp_window_count: r.get("totp_window_count")?,
                login_failures: r.get("login_failures")?,
                last_failure_at: r.get("last_failure_at")?,
            })
        })
        .optional()?)
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: UserId) -> Result<User> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = :id AND tenant_id = :t"
    ))?;
    st.query_row(named_params! {":id": id, ":t": scope.tenant()}, from_row)
        .optional()?
        .ok_or(Error::NotFound)
}

pub fn list(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<User>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = :t ORDER BY status = 'erased', lower(last_name), lower(first_name)"
    ))?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, from_row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn count_all(r: &Reader<'_>) -> Result<i64> {
    Ok(r.conn
        .prepare_cached("SELECT count(*) FROM users")?
        .query_row([], |r| r.get(0))?)
}

/// A person of the tenant by workstation username.
pub fn by_username(r: &Reader<'_>, scope: &TenantScope, username: &str) -> Result<Option<User>> {
    Ok(list(r, scope)?
        .into_iter()
        .find(|u| u.username.as_str() == username))
}

pub fn username_taken(r: &Reader<'_>, tenant: TenantId, username: &str) -> Result<bool> {
    let mut st = r.conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = :t AND username = :u)",
    )?;
    Ok(st.query_row(named_params! {":t": tenant, ":u": username}, |r| r.get(0))?)
}

pub fn email_taken(r: &Reader<'_>, email: &str) -> Result<bool> {
    let mut st = r
        .conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE email = :e)")?;
    Ok(st.query_row(named_params! {":e": email}, |r| r.get(0))?)
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a Email,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub username: &'a Username,
}

pub fn insert(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    u: &NewUser<'_>,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO users (id, tenant_id, email, first_name, last_name, username, status, created_at, updated_at)
             VALUES (:id, :t, :email, :first, :last, :username, 'invited', :now, :now)",
        )?
        .execute(named_params! {
            ":id": u.id, ":t": scope.tenant(), ":email": u.email.as_str(), ":first": u.first_name,
            ":last": u.last_name, ":username": u.username.as_str(), ":now": now,
        })
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, Some(msg)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                if msg.contains("email") {
                    Error::validation("email", "is already used by another person on this appliance")
                } else {
                    Error::validation("username", format!("\"{}\" is already used in this tenant", u.username))
                }
            }
            _ => e.into(),
        })?;
    Ok(())
}

fn exec(
    tx: &WriteTx<'_>,
    sql: &str,
    scope: &TenantScope,
    id: UserId,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached(sql)?
        .execute(named_params! {":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub fn set_status(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    status: UserStatus,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE users SET status = :s, updated_at = :now WHERE id = :id AND tenant_id = :t",
        )?
        .execute(
            named_params! {":s": status.as_str(), ":id": id, ":t": scope.tenant(), ":now": now},
        )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub fn set_username(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    username: &Username,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE users SET username = :u, updated_at = :now WHERE id = :id AND tenant_id = :t",
        )?
        .execute(
            named_params! {":u": username.as_str(), ":id": id, ":t": scope.tenant(), ":now": now},
        )
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::validation(
                    "username",
                    format!("\"{username}\" is already used in this tenant"),
                )
            }
            _ => e.into(),
        })?;
    Ok(())
}

/// Sets the password and TOTP secret at enrollment and activates the account.
pub fn enroll(
    tx: &WriteTx<'_>,
    id: UserId,
    password_hash: &str,
    totp_sealed: &[u8],
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE users SET password_hash = :h, totp_sealed = :s, totp_last_step = 0, totp_failures = 0,
                mfa_locked = 0, login_failures = 0, login_locked = 0,
                status = CASE WHEN status = 'invited' THEN 'active' ELSE status END, updated_at = :now
             WHERE id = :id AND status IN ('invited', 'active')",
        )?
        .execute(named_params! {":h": password_hash, ":s": totp_sealed, ":id": id, ":now": now})?;
    Ok(())
}

pub fn set_password_hash(tx: &WriteTx<'_>, id: UserId, hash: &str, now: Timestamp) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE users SET password_hash = :h, updated_at = :now WHERE id = :id")?
        .execute(named_params! {":h": hash, ":id": id, ":now": now})?;
    Ok(())
}

pub fn set_totp(tx: &WriteTx<'_>, id: UserId, sealed: &[u8], now: Timestamp) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE users SET totp_sealed = :s, totp_last_step = 0, updated_at = :now WHERE id = :id")?
        .execute(named_params! {":s": sealed, ":id": id, ":now": now})?;
    Ok(())
}

/// MFA-03: accepts `step` only if it is above the last accepted one, atomically, so a code
/// is used once even under concurrent submissions.
pub fn accept_totp_step(tx: &WriteTx<'_>, id: UserId, step: u64) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE users SET totp_last_step = :s, totp_failures = 0 WHERE id = :id AND totp_last_step < :s AND mfa_locked = 0",
        )?
        .execute(named_params! {":s": step as i64, ":id": id})?;
    Ok(n == 1)
}

/// Records a failed code; returns (consecutive failures, failures in the current window).
pub fn record_totp_failure(
    tx: &WriteTx<'_>,
    id: UserId,
    now: Timestamp,
    window_ms: i64,
    lock_at: i64,
) -> Result<(i64, i64)> {
    tx.conn()
        .prepare_cached(
            "UPDATE users SET totp_failures = totp_failures + 1,
                totp_window_count = CASE WHEN totp_window_start + :w > :now THEN totp_window_count + 1 ELSE 1 END,
                totp_window_start = CASE WHEN totp_window_start + :w > :now THEN totp_window_start ELSE :now END,
                mfa_locked = CASE WHEN totp_failures + 1 >= :lock THEN 1 ELSE mfa_locked END
             WHERE id = :id",
        )?
        .execute(named_params! {":id": id, ":now": now, ":w": window_ms, ":lock": lock_at})?;
    Ok(tx
        .conn()
        .prepare_cached("SELECT totp_failures, totp_window_count FROM users WHERE id = :id")?
        .query_row(named_params! {":id": id}, |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Records a failed password; returns the consecutive count (and locks at `lock_at`).
pub fn record_login_failure(
    tx: &WriteTx<'_>,
    id: UserId,
    now: Timestamp,
    lock_at: i64,
) -> Result<i64> {
    tx.conn()
        .prepare_cached(
            "UPDATE users SET login_failures = login_failures + 1, last_failure_at = :now,
                login_locked = CASE WHEN login_failures + 1 >= :lock THEN 1 ELSE login_locked END
             WHERE id = :id",
        )?
        .execute(named_params! {":id": id, ":now": now, ":lock": lock_at})?;
    Ok(tx
        .conn()
        .prepare_cached("SELECT login_failures FROM users WHERE id = :id")?
        .query_row(named_params! {":id": id}, |r| r.get(0))?)
}

pub fn reset_login_failures(tx: &WriteTx<'_>, id: UserId) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE users SET login_failures = 0 WHERE id = :id")?
        .execute(named_params! {":id": id})?;
    Ok(())
}

/// Admin unlock of both password and MFA lockouts.
pub fn unlock(tx: &WriteTx<'_>, scope: &TenantScope, id: UserId, now: Timestamp) -> Result<()> {
    exec(
        tx,
        "UPDATE users SET login_locked = 0, login_failures = 0, mfa_locked = 0, totp_failures = 0, totp_window_count = 0,
            updated_at = :now WHERE id = :id AND tenant_id = :t",
        scope,
        id,
        now,
    )
}

pub fn set_mfa_pause(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    until: Timestamp,
    next_login: bool,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE users SET mfa_pause_until = :u, mfa_pause_next = :n, updated_at = :now WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":u": until, ":n": next_login, ":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub fn consume_mfa_pause_next(tx: &WriteTx<'_>, id: UserId) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE users SET mfa_pause_next = 0 WHERE id = :id")?
        .execute(named_params! {":id": id})?;
    Ok(())
}

/// GDPR erasure: personal data replaced by a pseudonym; credentials removed; id kept.
pub fn erase(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    p: &crate::model::users::Pseudonym,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE users SET first_name = :f, last_name = :l, email = :e, username = :u, status = 'erased',
                password_hash = NULL, totp_sealed = NULL, updated_at = :now WHERE id = :id AND tenant_id = :t",
        )?
        .execute(named_params! {":f": p.first_name, ":l": p.last_name, ":e": p.email, ":u": p.username,
            ":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Back to `invited` with no credentials (a new enrollment link follows).
pub fn reset_enrollment(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    now: Timestamp,
) -> Result<()> {
    exec(
        tx,
        "UPDATE users SET status = 'invited', password_hash = NULL, totp_sealed = NULL, totp_last_step = 0,
            mfa_locked = 0, login_locked = 0, login_failures = 0, totp_failures = 0, updated_at = :now
         WHERE id = :id AND tenant_id = :t AND status IN ('invited', 'active')",
        scope,
        id,
        now,
    )
}

pub fn set_all_tenants(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    id: UserId,
    all: bool,
    now: Timestamp,
) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE users SET all_tenants = :a, updated_at = :now WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":a": all, ":id": id, ":t": scope.tenant(), ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

// --- roles and technician assignments -------------------------------------------------------

pub fn roles_of(r: &Reader<'_>, id: UserId) -> Result<Vec<String>> {
    let mut st = r
        .conn
        .prepare_cached("SELECT role FROM user_roles WHERE user_id = :id ORDER BY role")?;
    let rows = st.query_map(named_params! {":id": id}, |r| r.get(0))?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn add_role(tx: &WriteTx<'_>, scope: &TenantScope, id: UserId, role: &str) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "INSERT OR IGNORE INTO user_roles (tenant_id, user_id, role) VALUES (:t, :id, :role)",
        )?
        .execute(named_params! {":t": scope.tenant(), ":id": id, ":role": role})?;
    Ok(n == 1)
}

pub fn remove_role(tx: &WriteTx<'_>, scope: &TenantScope, id: UserId, role: &str) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "DELETE FROM user_roles WHERE tenant_id = :t AND user_id = :id AND role = :role",
        )?
        .execute(named_params! {":t": scope.tenant(), ":id": id, ":role": role})?;
    Ok(n == 1)
}

/// How many active (not erased/disabled) users of the tenant hold `role`.
pub fn count_with_role(r: &Reader<'_>, scope: &TenantScope, role: &str) -> Result<i64> {
    let mut st = r.conn.prepare_cached(
        "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id
         WHERE ur.tenant_id = :t AND ur.role = :role AND u.status IN ('invited', 'active')",
    )?;
    Ok(
        st.query_row(named_params! {":t": scope.tenant(), ":role": role}, |r| {
            r.get(0)
        })?,
    )
}

pub fn assigned_tenants(r: &Reader<'_>, id: UserId) -> Result<Vec<TenantId>> {
    let mut st = r
        .conn
        .prepare_cached("SELECT tenant_id FROM technician_tenants WHERE user_id = :id")?;
    let rows = st.query_map(named_params! {":id": id}, |r| r.get(0))?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Replaces a technician's tenant assignments (the technician lives in the MSP scope).
pub fn set_assigned_tenants(
    tx: &WriteTx<'_>,
    msp: &TenantScope,
    id: UserId,
    tenants: &[TenantId],
) -> Result<()> {
    let owner: Option<String> = tx
        .conn()
        .prepare_cached("SELECT id FROM users WHERE id = :id AND tenant_id = :t")?
        .query_row(named_params! {":id": id, ":t": msp.tenant()}, |r| r.get(0))
        .optional()?;
    if owner.is_none() {
        return Err(Error::NotFound);
    }
    tx.conn()
        .prepare_cached("DELETE FROM technician_tenants WHERE user_id = :id")?
        .execute(named_params! {":id": id})?;
    for t in tenants {
        tx.conn()
            .prepare_cached("INSERT INTO technician_tenants (user_id, tenant_id) VALUES (:id, :t)")?
            .execute(named_params! {":id": id, ":t": t})?;
    }
    Ok(())
}
