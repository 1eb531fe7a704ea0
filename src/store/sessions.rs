//! Server-side portal sessions, keyed by the hash of the cookie value.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::UserId;
use crate::model::sessions::{Session, Stage};

const COLUMNS: &str = "id_hash, user_id, stage, pending_totp, link_id, created_at, last_seen_at, expires_at, mfa_at, ip, user_agent, csrf_seed";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id_hash: r.get("id_hash")?,
        user_id: r.get("user_id")?,
        // A stage the schema does not know reads as the least one: nothing is granted by it.
        stage: Stage::parse(&r.get::<_, String>("stage")?).unwrap_or(Stage::PreAuth),
        pending_totp: r.get("pending_totp")?,
        link_id: r.get("link_id")?,
        created_at: r.get("created_at")?,
        last_seen_at: r.get("last_seen_at")?,
        expires_at: r.get("expires_at")?,
        mfa_at: r.get("mfa_at")?,
        ip: r.get("ip")?,
        user_agent: r.get("user_agent")?,
        csrf_seed: r.get("csrf_seed")?,
    })
}

pub fn get(r: &Reader<'_>, id_hash: &[u8]) -> Result<Option<Session>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM web_sessions WHERE id_hash = :h"
    ))?;
    Ok(st
        .query_row(named_params! {":h": id_hash}, from_row)
        .optional()?)
}

pub fn insert(tx: &WriteTx<'_>, s: &Session) -> Result<()> {
    tx.conn()
        .prepare_cached(&format!(
            "INSERT INTO web_sessions ({COLUMNS}) VALUES (:h, :u, :stage, :p, :link, :c, :seen, :exp, :mfa, :ip, :ua, :seed)"
        ))?
        .execute(named_params! {
            ":h": s.id_hash, ":u": s.user_id, ":stage": s.stage.as_str(), ":p": s.pending_totp, ":link": s.link_id,
            ":c": s.created_at, ":seen": s.last_seen_at, ":exp": s.expires_at, ":mfa": s.mfa_at, ":ip": s.ip, ":ua": s.user_agent,
            ":seed": s.csrf_seed,
        })?;
    Ok(())
}

pub fn delete(tx: &WriteTx<'_>, id_hash: &[u8]) -> Result<()> {
    tx.conn()
        .prepare_cached("DELETE FROM web_sessions WHERE id_hash = :h")?
        .execute(named_params! {":h": id_hash})?;
    Ok(())
}

/// Ends every session of a user (logout everywhere, disable, password change); returns how many.
pub fn delete_for_user(tx: &WriteTx<'_>, user: UserId) -> Result<u64> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM web_sessions WHERE user_id = :u")?
        .execute(named_params! {":u": user})?;
    Ok(n as u64)
}

pub fn touch(tx: &WriteTx<'_>, id_hash: &[u8], now: Timestamp) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE web_sessions SET last_seen_at = :now WHERE id_hash = :h")?
        .execute(named_params! {":h": id_hash, ":now": now})?;
    Ok(())
}

pub fn set_mfa_at(tx: &WriteTx<'_>, id_hash: &[u8], now: Timestamp) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE web_sessions SET mfa_at = :now, last_seen_at = :now WHERE id_hash = :h",
        )?
        .execute(named_params! {":h": id_hash, ":now": now})?;
    Ok(())
}

pub fn list_for_user(r: &Reader<'_>, user: UserId) -> Result<Vec<Session>> {
    let mut st = r
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM web_sessions WHERE user_id = :u AND stage = 'full' ORDER BY created_at DESC"))?;
    let rows = st.query_map(named_params! {":u": user}, from_row)?;
    rows.map(|r| r.map_err(crate::error::Error::from)).collect()
}

/// Job: forget sessions past their absolute end or idle for longer than `idle_ms`.
pub fn prune(tx: &WriteTx<'_>, now: Timestamp, idle_ms: i64) -> Result<u64> {
    let n = tx
        .conn()
        .prepare_cached(
            "DELETE FROM web_sessions WHERE expires_at <= :now OR last_seen_at + :idle <= :now",
        )?
        .execute(named_params! {":now": now, ":idle": idle_ms})?;
    Ok(n as u64)
}

/// Parks (or clears) a new TOTP secret, sealed, on a session while it is being confirmed.
pub fn set_pending_totp(tx: &WriteTx<'_>, id_hash: &[u8], sealed: Option<&[u8]>) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE web_sessions SET pending_totp = :p WHERE id_hash = :h")?
        .execute(named_params! {":p": sealed, ":h": id_hash})?;
    Ok(())
}

/// Ends a user's other sessions (after a credential change), keeping `keep`.
pub fn delete_others(tx: &WriteTx<'_>, user: UserId, keep: &[u8]) -> Result<u64> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM web_sessions WHERE user_id = :u AND id_hash != :k")?
        .execute(named_params! {":u": user, ":k": keep})?;
    Ok(n as u64)
}

/// How many session rows there are (tests and diagnostics).
pub fn count(r: &Reader<'_>) -> Result<i64> {
    Ok(r.conn
        .prepare_cached("SELECT COUNT(*) FROM web_sessions")?
        .query_row([], |r| r.get(0))?)
}
