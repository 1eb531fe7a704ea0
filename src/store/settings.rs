//! Appliance-wide key/value settings.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::clock::Timestamp;
use crate::error::Result;

pub fn get(r: &Reader<'_>, key: &str) -> Result<Option<String>> {
    let mut st = r
        .conn
        .prepare_cached("SELECT value FROM settings WHERE key = :key")?;
    Ok(st
        .query_row(named_params! {":key": key}, |row| row.get(0))
        .optional()?)
}

pub fn put(tx: &WriteTx<'_>, key: &str, value: &str, now: Timestamp) -> Result<()> {
    let mut st = tx.conn().prepare_cached(
        "INSERT INTO settings (key, value, updated_at) VALUES (:key, :value, :now)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?;
    st.execute(named_params! {":key": key, ":value": value, ":now": now})?;
    Ok(())
}

/// Proves the database accepts writes (/healthz).
pub fn touch_health_probe(tx: &WriteTx<'_>, now: Timestamp) -> Result<()> {
    let mut st = tx.conn().prepare_cached(
        "INSERT INTO health_probe (id, at) VALUES (1, :now) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )?;
    st.execute(named_params! {":now": now})?;
    Ok(())
}
