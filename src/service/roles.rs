//! Custom roles of a tenant, built from the permission list.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::{Permission, PermissionSet, Principal};
use crate::error::{Error, Result};
use crate::model::audit::Event;
use crate::model::roles::CustomRole;
use crate::model::tenants::{Tenant, parse_name};
use crate::store::{self};

pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<CustomRole>> {
    let scope = p.scope(t, Permission::UsersView)?;
    ctx.db.read(move |r| store::roles::list(r, &scope)).await
}

pub async fn create(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    name: &str,
    perms: &[String],
    origin: &Origin,
) -> Result<CustomRole> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    p.require_fresh_mfa(now)?;
    let name = parse_name("name", name)?;
    let mut set = PermissionSet::default();
    for code in perms {
        set.insert(Permission::parse(code).ok_or_else(|| {
            Error::validation("permissions", format!("unknown permission {code:?}"))
        })?);
    }
    if set.iter().count() == 0 {
        return Err(Error::validation(
            "permissions",
            "choose at least one permission",
        ));
    }
    // A role is a way to hand permissions out: only ones the author holds.
    if !set.is_subset(p.permissions_in(t).unwrap_or_default()) {
        return Err(Error::Forbidden(
            "a role may hold only permissions you hold yourself".into(),
        ));
    }
    let role = CustomRole {
        id: format!("role-{}", uuid::Uuid::now_v7().simple()),
        name,
        permissions: set,
    };
    let (p2, o, r2) = (p.clone(), origin.clone(), role.clone());
    ctx.db
        .write(move |tx| {
            store::roles::insert(tx, &scope, &r2, now)?;
            let codes: Vec<&str> = r2.permissions.iter().map(Permission::code).collect();
            Audit::new(Event::RoleCreated, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("role", &r2.id)
                .details(json!({"permissions": codes}))
                .append(tx)?;
            Ok(())
        })
        .await?;
    Ok(role)
}

pub async fn delete(ctx: &Ctx, p: &Principal, t: &Tenant, id: &str, origin: &Origin) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    p.require_fresh_mfa(now)?;
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::roles::get(&tx.reader(), &scope, &id)?;
            store::roles::delete(tx, &scope, &id)?;
            Audit::new(Event::RoleDeleted, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("role", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}
