//! Application elevation policies and the version of each tenant's bundle.

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::model::policies::Policy;

fn parse(body: String) -> rusqlite::Result<Policy> {
    serde_json::from_str(&body).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The tenant's policies, by name.
pub fn list(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<Policy>> {
    let mut st = r
        .conn
        .prepare_cached("SELECT body FROM policies WHERE tenant_id = :t ORDER BY name, id")?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, |r| parse(r.get(0)?))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: &str) -> Result<Policy> {
    r.conn
        .prepare_cached("SELECT body FROM policies WHERE id = :id AND tenant_id = :t")?
        .query_row(named_params! {":id": id, ":t": scope.tenant()}, |r| {
            parse(r.get(0)?)
        })
        .optional()?
        .ok_or(Error::NotFound)
}

/// Another policy of the tenant with this name (case-insensitive), if any.
pub fn named(r: &Reader<'_>, scope: &TenantScope, name: &str, not: &str) -> Result<Option<String>> {
    Ok(r.conn
        .prepare_cached(
            "SELECT id FROM policies WHERE tenant_id = :t AND lower(name) = lower(:n) AND id != :not LIMIT 1",
        )?
        .query_row(named_params! {":t": scope.tenant(), ":n": name.trim(), ":not": not}, |r| r.get(0))
        .optional()?)
}

/// Inserts or replaces a policy and raises the bundle version; returns the new version.
pub fn put(tx: &WriteTx<'_>, scope: &TenantScope, p: &Policy, now: Timestamp) -> Result<i64> {
    let body = serde_json::to_string(p)?;
    tx.conn()
        .prepare_cached(
            "INSERT INTO policies (id, tenant_id, name, body, created_at, updated_at)
             VALUES (:id, :t, :n, :b, :now, :now)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, body = excluded.body, updated_at = :now
             WHERE policies.tenant_id = :t",
        )?
        .execute(named_params! {":id": p.id, ":t": scope.tenant(), ":n": p.name, ":b": body, ":now": now})?;
    bump(tx, scope)
}

pub fn delete(tx: &WriteTx<'_>, scope: &TenantScope, id: &str) -> Result<i64> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM policies WHERE id = :id AND tenant_id = :t")?
        .execute(named_params! {":id": id, ":t": scope.tenant()})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    bump(tx, scope)
}

fn bump(tx: &WriteTx<'_>, scope: &TenantScope) -> Result<i64> {
    Ok(tx
        .conn()
        .prepare_cached(
            "INSERT INTO policy_versions (tenant_id, version) VALUES (:t, 1)
             ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1
             RETURNING version",
        )?
        .query_row(named_params! {":t": scope.tenant()}, |r| r.get(0))?)
}

pub fn version(r: &Reader<'_>, scope: &TenantScope) -> Result<i64> {
    Ok(r.conn
        .prepare_cached("SELECT version FROM policy_versions WHERE tenant_id = :t")?
        .query_row(named_params! {":t": scope.tenant()}, |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}
