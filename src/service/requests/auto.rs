//! Auto-approval rules and the links between workstation accounts and people.

use super::*;

/// Auto-approval rules of a tenant (`policies.view`).
pub async fn rules_of(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<rules::AutoRule>> {
    let scope = p.scope(t, Permission::PoliciesView)?;
    ctx.db
        .read(move |r| store::requests::rules(r, &scope))
        .await
}

/// What an admin sets for a rule; times of day as `HH:MM` in the tenant's time zone.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    pub max_minutes: i64,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

pub(super) fn minute_of(field: &str, v: &Option<String>) -> Result<Option<u32>> {
    let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || Error::validation(field, "must be a time of day like 08:30");
    let (h, m) = v.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(Some(h * 60 + m))
}

pub async fn create_rule(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    n: NewRule,
    origin: &Origin,
) -> Result<rules::AutoRule> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let name = crate::model::tenants::parse_name("name", &n.name)?;
    let max = rules::check_minutes("max_minutes", n.max_minutes, t.settings.jit_max_minutes)?;
    let (from, to) = (minute_of("from", &n.from)?, minute_of("to", &n.to)?);
    if from.is_some() != to.is_some() {
        return Err(Error::validation(
            "to",
            "give both ends of the time window, or neither",
        ));
    }
    let device_id = match n.device_id.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            let id = DeviceId::parse(d)
                .ok_or_else(|| Error::validation("device_id", "unknown workstation"))?;
            ctx.db
                .read(move |r| store::devices::get(r, &scope, id))
                .await
                .map_err(|_| Error::validation("device_id", "unknown workstation"))?;
            Some(id.to_string())
        }
        None => None,
    };
    let rule = rules::AutoRule {
        id: format!("rule-{}", uuid::Uuid::now_v7().simple()),
        name,
        account: n
            .account
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        device_id,
        max_minutes: max,
        from_minute: from,
        to_minute: to,
    };
    let (p2, o, r2) = (p.clone(), origin.clone(), rule.clone());
    ctx.db
        .write(move |tx| {
            store::requests::insert_rule(tx, &scope, &r2, now)?;
            Audit::new(Event::AutoRuleCreated, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("auto_rule", &r2.id)
                .details(serde_json::to_value(&r2)?)
                .append(tx)?;
            Ok(())
        })
        .await?;
    Ok(rule)
}

pub async fn delete_rule(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::requests::delete_rule(tx, &scope, &id)?;
            Audit::new(Event::AutoRuleDeleted, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("auto_rule", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}

/// The tenant's endpoint users (`users.view`): who asked for rights from which workstation.
pub async fn endpoint_users(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
) -> Result<Vec<store::requests::EndpointUser>> {
    let scope = p.scope(t, Permission::UsersView)?;
    ctx.db
        .read(move |r| store::requests::endpoint_users(r, &scope))
        .await
}

/// Links an endpoint user to a user of the same tenant, or unlinks it (`users.manage`,
/// audited). A linked person can never approve that account's requests.
pub async fn link_endpoint_user(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
    user: Option<&str>,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    // Changing who an account belongs to decides who may approve its requests (JIT-01).
    p.require_fresh_mfa(now)?;
    let user = match user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(
            crate::ids::UserId::parse(u)
                .ok_or_else(|| Error::validation("user_id", "unknown user of this tenant"))?,
        ),
        None => None,
    };
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            // The endpoint user first, then the person: a foreign id of either is NotFound,
            // answered 404 and audited like any other (AZ-02); the rollback undoes the link.
            let uid = user.map(|u| u.to_string());
            // A person never changes the link that identifies them: someone else must.
            let current = store::requests::linked_user(&tx.reader(), &id)?;
            if current.as_deref() == Some(p2.user_id.to_string().as_str()) && uid != current {
                return Err(Error::Forbidden(
                    "this account is linked to you: someone else must change that link".into(),
                ));
            }
            store::requests::link_endpoint_user(tx, &scope, &id, uid.as_deref(), now)?;
            if let Some(u) = user {
                store::users::get(&tx.reader(), &scope, u)?;
            }
            Audit::new(Event::EndpointUserLinked, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("endpoint_user", &id)
                .details(json!({"user_id": uid}))
                .append(tx)?;
            Ok(())
        })
        .await
}
