//! Application elevation policies (DESIGN §4): managed per tenant, pushed to the tenant's
//! agents as a versioned bundle (`policy_update`), and decided by the shared engine in
//! `model::policies` for `/agent/v1/decide`.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::commands;
use crate::authz::{Permission, Principal, TenantScope, system_scope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::Action;
use crate::model::devices::Device;
use crate::model::policies::{self as engine, Access, App, Decision, Policy, Rule, RuleKind, Span};
use crate::model::requests::Grant;
use crate::model::requests::Request;
use crate::model::tenants::Tenant;
use crate::store::{self, WriteTx};

/// How long a bundle waits for an offline workstation.
const BUNDLE_TTL_MS: i64 = 7 * 86_400_000;

/// A policy as an admin writes it (ids and times are the appliance's).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    /// `fixed` (with `hours`) or `window` (with `from` and `to`: local times in the tenant's
    /// zone like `2026-11-23T08:00`, or RFC 3339 with an offset).
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `all` or `specific`.
    pub access: String,
    #[serde(default)]
    pub rules: Vec<RuleInput>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub deny: bool,
}

/// A window's end: local time in the tenant's zone, or RFC 3339 with an offset.
fn time(field: &str, v: &Option<String>, zone: &str) -> Result<i64> {
    let v = v
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Error::validation(field, "is required for a window"))?;
    crate::model::zones::parse(field, v, zone)
}

/// Builds and checks a policy; `id` and `deployed` come from the appliance.
pub(super) fn build(
    r: &store::Reader<'_>,
    scope: &TenantScope,
    id: String,
    i: PolicyInput,
    deployed: i64,
) -> Result<Policy> {
    let span = match i.duration.as_str() {
        "fixed" => Span::Fixed {
            hours: i
                .hours
                .ok_or_else(|| Error::validation("hours", "is required for a fixed duration"))?,
            from: deployed,
        },
        "window" => {
            let zone = store::tenants::get(r, scope)?.settings.time_zone;
            Span::Window {
                from: time("from", &i.from, &zone)?,
                to: time("to", &i.to, &zone)?,
            }
        }
        "" => {
            return Err(Error::validation(
                "duration",
                "choose how long the policy applies: a fixed number of hours or a window",
            ));
        }
        _ => return Err(Error::validation("duration", "must be fixed or window")),
    };
    let access = match i.access.as_str() {
        "all" => Access::All,
        "specific" => Access::Specific,
        _ => return Err(Error::validation("access", "must be all or specific")),
    };
    let mut rules = Vec::new();
    for (n, ri) in i.rules.into_iter().enumerate() {
        let kind = RuleKind::parse(&ri.kind).ok_or_else(|| {
            Error::validation(
                "kind",
                "must be vendor, product, verified, hash, clsid or path",
            )
        })?;
        rules.push(Rule {
            id: format!("rule-{}", n + 1),
            kind,
            value: engine::check_rule(kind, &ri.value)?,
            deny: ri.deny,
        });
    }
    for d in &i.devices {
        let id = DeviceId::parse(d)
            .ok_or_else(|| Error::validation("devices", format!("unknown workstation {d:?}")))?;
        store::devices::get(r, scope, id)
            .map_err(|_| Error::validation("devices", format!("unknown workstation {d:?}")))?;
    }
    let p = Policy {
        id,
        name: i.name.trim().to_string(),
        description: i.description.trim().to_string(),
        enabled: i.enabled,
        devices: i.devices,
        users: i.users.into_iter().map(|u| u.trim().to_string()).collect(),
        span,
        access,
        rules,
        once: false,
    };
    engine::check_policy(&p)?;
    Ok(p)
}

/// How long a rule made from an approved request lasts (editable like any policy).
const RULE_HOURS: u32 = 8760;

/// How an approval turns into a policy: its scope, its end (for "once"), and who approved
/// (None: an auto-approval rule).
pub(super) struct FromRequest<'a> {
    pub grant: Grant,
    pub until: Timestamp,
    pub by: Option<(&'a crate::authz::Principal, &'a super::audit::Origin)>,
}

/// Inside the approval's transaction: the policy an application request becomes — a hash
/// rule for this program, for this user on this device until `until` (`once`), or a standing
/// rule for the user, the device or the whole tenant. Audited on the policy and pushed.
pub(super) fn from_request(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    made: FromRequest<'_>,
    now: Timestamp,
) -> Result<(String, Vec<DeviceId>)> {
    let FromRequest { grant, until, by } = made;
    let app = r
        .app
        .as_ref()
        .ok_or_else(|| Error::InvalidState("this request names no application".into()))?;
    let (name, devices, users, span) = reach(grant, r, &program_label(app), until, now);
    let policy = Policy {
        id: format!("pol-{}", uuid::Uuid::now_v7().simple()),
        name: truncate(&name, 200),
        description: truncate(&format!("From request {}: {}", r.id, r.justification), 2000),
        enabled: true,
        devices,
        users,
        span,
        access: Access::Specific,
        rules: vec![Rule {
            id: "rule-1".into(),
            kind: RuleKind::Hash,
            value: engine::check_rule(RuleKind::Hash, &app.sha256)?,
            deny: false,
        }],
        once: grant == Grant::Once,
    };
    engine::check_policy(&policy)?;
    let version = store::policies::put(tx, scope, &policy, now)?;
    let audit = Audit::new(Event::PolicyCreated, now)
        .tenant(scope.tenant())
        .target("policy", &policy.id)
        .request(r.id, r.ticket.clone())
        .details(json!({"policy": policy, "version": version, "grant": grant.as_str()}));
    match by {
        Some((p, o)) => audit.by(p, o),
        None => audit,
    }
    .append(tx)?;
    Ok((policy.id, push(tx, ctx, scope, version, now)?))
}

/// A program as people name it: "Product (file.exe)", or the file name alone.
fn program_label(app: &App) -> String {
    let file: String = app
        .path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&app.path)
        .chars()
        .take(80)
        .collect();
    if app.product.is_empty() {
        file
    } else {
        format!("{} ({file})", app.product)
    }
}

/// Whom and where an approved program's policy covers, by the approval's grant, and its name.
fn reach(
    grant: Grant,
    r: &Request,
    what: &str,
    until: Timestamp,
    now: Timestamp,
) -> (String, Vec<String>, Vec<String>, Span) {
    let device = r.device_id.to_string();
    // Every name carries its request: names stay unique, so an exported file imports again.
    match grant {
        Grant::Once => (
            format!(
                "Request {}: {what} for {} on {}",
                r.id, r.account, r.hostname
            ),
            vec![device],
            vec![r.account.clone()],
            Span::Window {
                from: now.millis(),
                to: until.millis(),
            },
        ),
        Grant::User => (
            format!("Request {}: {what} for {}", r.id, r.account),
            vec![],
            vec![r.account.clone()],
            fixed(now),
        ),
        Grant::Device => (
            format!("Request {}: {what} on {}", r.id, r.hostname),
            vec![device],
            vec![],
            fixed(now),
        ),
        Grant::Tenant => (
            format!("Request {}: {what} for everyone", r.id),
            vec![],
            vec![],
            fixed(now),
        ),
    }
}

/// At most `max` bytes (the policy limits count bytes), cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn fixed(now: Timestamp) -> Span {
    Span::Fixed {
        hours: RULE_HOURS,
        from: now.millis(),
    }
}

/// Removes the policy a request created (revoked, or a one-off approval that ran out);
/// nothing when an admin has deleted it already.
pub(super) fn remove_for_request(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let Some(id) = r.policy_id.as_deref() else {
        return Ok(vec![]);
    };
    let version = match store::policies::delete(tx, scope, id) {
        Ok(v) => v,
        Err(Error::NotFound) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    Audit::new(Event::PolicyDeleted, now)
        .tenant(scope.tenant())
        .target("policy", id)
        .request(r.id, r.ticket.clone())
        .details(json!({"version": version, "request_state": r.state.as_str()}))
        .append(tx)?;
    push(tx, ctx, scope, version, now)
}

/// A "just this request" policy has allowed its one run: it is deleted (audited) and the
/// bundle without it goes to the workstations. Nothing for any other policy.
pub(super) fn consume_once(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    policy: &str,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let once = store::policies::get(&tx.reader(), scope, policy).is_ok_and(|p| p.once);
    if !once {
        return Ok(vec![]);
    }
    let version = store::policies::delete(tx, scope, policy)?;
    Audit::new(Event::PolicyDeleted, now)
        .tenant(scope.tenant())
        .target("policy", policy)
        .details(json!({"version": version, "why": "used once"}))
        .append(tx)?;
    push(tx, ctx, scope, version, now)
}

/// Wakes devices after the transaction that queued their bundle has committed.
pub fn wake(ctx: &Ctx, devices: Vec<DeviceId>) {
    for d in devices {
        ctx.wake.wake(d);
    }
}

/// Sends the tenant's bundle (all its policies, with the version) to every active device.
pub(super) fn push(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    version: i64,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let bundle = serde_json::to_value(store::policies::list(&tx.reader(), scope)?)?;
    let devices: Vec<DeviceId> = store::devices::list(&tx.reader(), scope)?
        .into_iter()
        .filter(|d| d.active)
        .map(|d| d.id)
        .collect();
    for d in &devices {
        send(tx, ctx, scope, *d, version, bundle.clone(), now)?;
    }
    Ok(devices)
}

fn send(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    version: i64,
    bundle: serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        device,
        &Action::PolicyUpdate { version, bundle },
        BUNDLE_TTL_MS,
        now,
    )?;
    Ok(())
}

/// In the enrollment transaction: a new workstation gets the tenant's current bundle.
pub fn on_enroll(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    now: Timestamp,
) -> Result<()> {
    let version = store::policies::version(&tx.reader(), scope)?;
    if version > 0 {
        let bundle = serde_json::to_value(store::policies::list(&tx.reader(), scope)?)?;
        send(tx, ctx, scope, device, version, bundle, now)?;
    }
    Ok(())
}

pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<Policy>> {
    let scope = p.scope(t, Permission::PoliciesView)?;
    ctx.db.read(move |r| store::policies::list(r, &scope)).await
}

/// A policy's audit tab: its changes, and every decision made under it (`audit.view`).
pub async fn audit(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
) -> Result<Vec<crate::model::audit::Entry>> {
    let scope = p.scope(t, Permission::AuditView)?;
    let id = id.to_string();
    ctx.db
        .read(move |r| {
            store::policies::get(r, &scope, &id)?;
            Ok(store::audit::about(r, &scope, "policy", &id, 200)?
                .into_iter()
                .map(|(_, e)| e)
                .collect())
        })
        .await
}

pub async fn get(ctx: &Ctx, p: &Principal, t: &Tenant, id: &str) -> Result<Policy> {
    let scope = p.scope(t, Permission::PoliciesView)?;
    let id = id.to_string();
    ctx.db
        .read(move |r| store::policies::get(r, &scope, &id))
        .await
}

/// Creates (`id` None) or replaces a policy (`policies.manage`, step-up); audited and pushed.
pub async fn save(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: Option<String>,
    input: PolicyInput,
    origin: &Origin,
) -> Result<Policy> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let (policy, woken) = ctx
        .db
        .write(move |tx| {
            let r = tx.reader();
            let (pid, deployed, event, once) = match id {
                Some(id) => {
                    let old = store::policies::get(&r, &scope, &id)?;
                    let from = match old.span {
                        Span::Fixed { from, .. } => from,
                        Span::Window { .. } => now.millis(),
                    };
                    (id, from, Event::PolicyUpdated, old.once)
                }
                None => (
                    format!("pol-{}", uuid::Uuid::now_v7().simple()),
                    now.millis(),
                    Event::PolicyCreated,
                    false,
                ),
            };
            let mut policy = build(&r, &scope, pid, input, deployed)?;
            policy.once = once;
            if store::policies::named(&r, &scope, &policy.name, &policy.id)?.is_some() {
                return Err(Error::validation(
                    "name",
                    format!(
                        "a policy named {:?} already exists in this tenant; choose another name",
                        policy.name
                    ),
                ));
            }
            let version = store::policies::put(tx, &scope, &policy, now)?;
            Audit::new(event, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("policy", &policy.id)
                .details(json!({"policy": policy, "version": version}))
                .append(tx)?;
            let woken = push(tx, &ctx2, &scope, version, now)?;
            Ok((policy, woken))
        })
        .await?;
    for d in woken {
        ctx.wake.wake(d);
    }
    Ok(policy)
}

pub async fn delete(ctx: &Ctx, p: &Principal, t: &Tenant, id: &str, origin: &Origin) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o, id) = (ctx.clone(), p.clone(), origin.clone(), id.to_string());
    let woken = ctx
        .db
        .write(move |tx| {
            let version = store::policies::delete(tx, &scope, &id)?;
            Audit::new(Event::PolicyDeleted, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("policy", &id)
                .details(json!({"version": version}))
                .append(tx)?;
            push(tx, &ctx2, &scope, version, now)
        })
        .await?;
    for d in woken {
        ctx.wake.wake(d);
    }
    Ok(())
}

/// "Test a decision": what the engine answers for these attributes (nothing recorded).
pub async fn test(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: &str,
    user: &str,
    app: App,
) -> Result<Decision> {
    let scope = p.scope(t, Permission::PoliciesView)?;
    engine::check_app(&app)?;
    let now = ctx.clock.now().millis();
    let ps = ctx
        .db
        .read(move |r| store::policies::list(r, &scope))
        .await?;
    Ok(engine::decide(&ps, device, user, &app, now))
}

/// What a workstation asks.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// The local account that wants to run the program.
    pub user: String,
    pub app: App,
}

/// `/agent/v1/decide`: the device's own tenant's policies, every decision audited under the
/// policy that made it (the per-policy audit view).
pub async fn decide(
    ctx: &Ctx,
    d: &Device,
    req: DecideRequest,
    origin: &Origin,
) -> Result<Decision> {
    engine::check_app(&req.app)?;
    if req.user.trim().is_empty() || req.user.len() > 64 {
        return Err(Error::validation("user", "must be a local account name"));
    }
    let now = ctx.clock.now();
    let (device, tenant, o, ctx2) = (d.id, d.tenant_id, origin.clone(), ctx.clone());
    let (decision, woken) = ctx
        .db
        .write(move |tx| {
            let scope = system_scope(tenant);
            let ps = store::policies::list(&tx.reader(), &scope)?;
            let decision =
                engine::decide(&ps, &device.to_string(), &req.user, &req.app, now.millis());
            let (event, policy) = match &decision {
                Decision::Allow { policy, .. } => (Event::ElevationAllowed, Some(policy.clone())),
                Decision::Deny { policy, .. } => (Event::ElevationDenied, Some(policy.clone())),
                Decision::Ask => (Event::ElevationAsked, None),
            };
            let mut a = Audit::new(event, now)
                .tenant(tenant)
                .device(device)
                .actor(ActorKind::Device, Some(device.to_string()))
                .from(&o)
                .details(json!({"user": req.user, "app": req.app, "decision": decision}));
            if let Some(p) = policy {
                a = a.target("policy", &p);
            }
            if matches!(decision, Decision::Deny { .. }) {
                a = a.failure();
            }
            a.append(tx)?;
            // The one run a "just this request" approval allows is this one.
            let woken = match &decision {
                Decision::Allow { policy, .. } => consume_once(tx, &ctx2, &scope, policy, now)?,
                _ => vec![],
            };
            Ok((decision, woken))
        })
        .await?;
    wake(ctx, woken);
    Ok(decision)
}
