//! One-time links (setup, enrollment): stored as hashes, single use, expiring.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::UserId;
pub use crate::model::one_time_links::{Link, LinkKind};

pub fn insert(
    tx: &WriteTx<'_>,
    id: &str,
    kind: LinkKind,
    hash: &[u8],
    user: Option<UserId>,
    expires: Timestamp,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO one_time_links (id, kind, token_hash, user_id, expires_at, created_at)
             VALUES (:id, :kind, :h, :u, :exp, :now)",
        )?
        .execute(named_params! {":id": id, ":kind": kind, ":h": hash, ":u": user, ":exp": expires, ":now": now})?;
    Ok(())
}

pub fn by_hash(r: &Reader<'_>, hash: &[u8]) -> Result<Option<Link>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, kind, user_id, expires_at, used_at FROM one_time_links WHERE token_hash = :h",
    )?;
    Ok(st
        .query_row(named_params! {":h": hash}, |r| {
            Ok(Link {
                id: r.get("id")?,
                kind: r.get("kind")?,
                user_id: r.get("user_id")?,
                expires_at: r.get("expires_at")?,
                used_at: r.get("used_at")?,
            })
        })
        .optional()?)
}

/// Marks the link used if it still is usable; false when someone else used it first.
pub fn consume(tx: &WriteTx<'_>, id: &str, now: Timestamp) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE one_time_links SET used_at = :now WHERE id = :id AND used_at IS NULL AND expires_at > :now")?
        .execute(named_params! {":id": id, ":now": now})?;
    Ok(n == 1)
}

/// Expires every open link of a kind (and user), e.g. before issuing a new one.
pub fn revoke_open(
    tx: &WriteTx<'_>,
    kind: LinkKind,
    user: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE one_time_links SET expires_at = min(expires_at, :now)
             WHERE kind = :kind AND used_at IS NULL AND (user_id IS :u)",
        )?
        .execute(named_params! {":kind": kind, ":u": user, ":now": now})?;
    Ok(())
}

/// Job: forget links that can no longer be used, a week after they stopped being usable.
pub fn prune(tx: &WriteTx<'_>, now: Timestamp) -> Result<u64> {
    let cutoff = now.plus_secs(-7 * 86_400);
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM one_time_links WHERE coalesce(used_at, expires_at) < :c")?
        .execute(named_params! {":c": cutoff})?;
    Ok(n as u64)
}
