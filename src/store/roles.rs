//! Custom roles of a tenant (built-in roles live in code).

use rusqlite::{OptionalExtension, named_params};

use super::{Reader, WriteTx};
use crate::authz::{Permission, PermissionSet, TenantScope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::model::roles::CustomRole;

fn perms(s: &str) -> PermissionSet {
    s.split(',').filter_map(Permission::parse).collect()
}

pub fn list(r: &Reader<'_>, scope: &TenantScope) -> Result<Vec<CustomRole>> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, name, permissions FROM roles WHERE tenant_id = :t ORDER BY lower(name)",
    )?;
    let rows = st.query_map(named_params! {":t": scope.tenant()}, |r| {
        let p: String = r.get("permissions")?;
        Ok(CustomRole {
            id: r.get("id")?,
            name: r.get("name")?,
            permissions: perms(&p),
        })
    })?;
    rows.map(|r| r.map_err(Error::from)).collect()
}

pub fn get(r: &Reader<'_>, scope: &TenantScope, id: &str) -> Result<CustomRole> {
    let mut st = r.conn.prepare_cached(
        "SELECT id, name, permissions FROM roles WHERE id = :id AND tenant_id = :t",
    )?;
    st.query_row(named_params! {":id": id, ":t": scope.tenant()}, |r| {
        let p: String = r.get("permissions")?;
        Ok(CustomRole {
            id: r.get("id")?,
            name: r.get("name")?,
            permissions: perms(&p),
        })
    })
    .optional()?
    .ok_or(Error::NotFound)
}

pub fn insert(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    role: &CustomRole,
    now: Timestamp,
) -> Result<()> {
    let codes: Vec<&str> = role.permissions.iter().map(Permission::code).collect();
    tx.conn()
        .prepare_cached("INSERT INTO roles (id, tenant_id, name, permissions, created_at) VALUES (:id, :t, :name, :p, :now)")?
        .execute(named_params! {":id": role.id, ":t": scope.tenant(), ":name": role.name, ":p": codes.join(","), ":now": now})
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                Error::validation("name", format!("a role named \"{}\" already exists", role.name))
            }
            _ => e.into(),
        })?;
    Ok(())
}

pub fn delete(tx: &WriteTx<'_>, scope: &TenantScope, id: &str) -> Result<()> {
    tx.conn()
        .prepare_cached("DELETE FROM user_roles WHERE tenant_id = :t AND role = :id")?
        .execute(named_params! {":t": scope.tenant(), ":id": id})?;
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM roles WHERE tenant_id = :t AND id = :id")?
        .execute(named_params! {":t": scope.tenant(), ":id": id})?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Permissions of the custom roles among `keys` in the user's tenant (unscoped: used while
/// building the principal itself).
pub fn permissions_of(
    r: &Reader<'_>,
    tenant: crate::ids::TenantId,
    keys: &[String],
) -> Result<PermissionSet> {
    let mut set = PermissionSet::default();
    let mut st = r
        .conn
        .prepare_cached("SELECT permissions FROM roles WHERE tenant_id = :t AND id = :id")?;
    for k in keys {
        if let Some(p) = st
            .query_row(named_params! {":t": tenant, ":id": k}, |r| {
                r.get::<_, String>(0)
            })
            .optional()?
        {
            set = set.union(perms(&p));
        }
    }
    Ok(set)
}
