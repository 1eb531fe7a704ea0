//! Management API tokens: hashed, revocable, acting as their user.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::model::tokens::ApiToken;

const COLUMNS: &str =
    "id, tenant_id, user_id, name, created_at, last_used_at, revoked_at, sensitive, expires_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get("id")?,
        tenant_id: r.get("tenant_id")?,
        user_id: r.get("user_id")?,
        name: r.get("name")?,
        created_at: r.get("created_at")?,
        last_used_at: r.get("last_used_at")?,
        revoked_at: r.get("revoked_at")?,
        sensitive: r.get("sensitive")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn insert(tx: &WriteTx<'_>, t: &ApiToken, hash: &[u8]) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO api_tokens (id, tenant_id, user_id, name, token_hash, created_at, sensitive, expires_at)
             VALUES (:id, :t, :u, :n, :h, :c, :s, :e)",
        )?
        .execute(named_params! {":id": t.id, ":t": t.tenant_id, ":u": t.user_id, ":n": t.name, ":h": hash, ":c": t.created_at, ":s": t.sensitive, ":e": t.expires_at})?;
    Ok(())
}

pub fn by_hash(r: &Reader<'_>, hash: &[u8]) -> Result<Option<ApiToken>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = :h"
    ))?;
    Ok(st
        .query_row(named_params! {":h": hash}, from_row)
        .optional()?)
}

pub fn list_for_user(r: &Reader<'_>, user: UserId) -> Result<Vec<ApiToken>> {
    let mut st = r.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = :u ORDER BY created_at DESC"
    ))?;
    let rows = st.query_map(named_params! {":u": user}, from_row)?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

/// Revokes one of `user`'s tokens; NotFound for anyone else's.
pub fn revoke(tx: &WriteTx<'_>, user: UserId, id: &str, now: Timestamp) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, :now) WHERE id = :id AND user_id = :u")?
        .execute(named_params! {":id": id, ":u": user, ":now": now})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Revokes every live token of `user`; returns how many.
pub fn revoke_all_for_user(tx: &WriteTx<'_>, user: UserId, now: Timestamp) -> Result<usize> {
    Ok(tx
        .conn()
        .prepare_cached(
            "UPDATE api_tokens SET revoked_at = :now WHERE user_id = :u AND revoked_at IS NULL",
        )?
        .execute(named_params! {":u": user, ":now": now})?)
}

pub fn touch(tx: &WriteTx<'_>, id: &str, now: Timestamp) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE api_tokens SET last_used_at = :now WHERE id = :id")?
        .execute(named_params! {":id": id, ":now": now})?;
    Ok(())
}
