//! Customer tenants: create, rename, settings, disable (MSP admins; settings also by
//! whoever holds `settings.manage` in the tenant).

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::{Permission, Principal};
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::model::audit::Event;
use crate::model::tenants::{Settings, Slug, Tenant, TenantKind, parse_name};
use crate::store;

/// The tenant a URL names, if the principal reaches it; otherwise NotFound, with an
/// `authz_fail` audit entry naming the tenant when it exists (AZ-02).
pub async fn resolve(ctx: &Ctx, p: &Principal, slug: &str, origin: &Origin) -> Result<Tenant> {
    let s = slug.to_string();
    let t = ctx.db.read(move |r| store::tenants::by_slug(r, &s)).await?;
    match t {
        Some(t) if p.reaches(&t) => Ok(t),
        other => {
            authz_fail(ctx, p, other.map(|t| t.id), "tenant out of reach", origin).await?;
            Err(Error::NotFound)
        }
    }
}

/// Records a refused access (a foreign tenant or object, a missing permission).
/// Refused ids a principal may run into within a minute before it is taken for guessing.
pub const PROBES_PER_MINUTE: u32 = 60;

/// Audits a refusal (AZ-02). A principal refused more than `PROBES_PER_MINUTE` times in a
/// minute is guessing ids (TI-02): the burst is audited once as `malicious_direct_reference`
/// and answered 429 until the minute is over.
pub async fn authz_fail(
    ctx: &Ctx,
    p: &Principal,
    tenant: Option<TenantId>,
    why: &str,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let burst = ctx
        .probes
        .note(&p.user_id.to_string(), now, 60_000, PROBES_PER_MINUTE);
    let (p, o, why) = (p.clone(), origin.clone(), why.to_string());
    let crossed = burst == super::throttle::Burst::Crossed;
    ctx.db
        .write(move |tx| {
            let mut a = Audit::new(Event::AuthzFail, now)
                .failure()
                .by(&p, &o)
                .details(json!({"reason": why}));
            if let Some(t) = tenant {
                a = a.tenant(t);
            }
            a.append(tx)?;
            if crossed {
                Audit::new(Event::MaliciousDirectReference, now)
                    .failure()
                    .by(&p, &o)
                    .details(json!({"refusals_in_a_minute": PROBES_PER_MINUTE}))
                    .append(tx)?;
            }
            Ok(())
        })
        .await?;
    if burst == super::throttle::Burst::Under {
        Ok(())
    } else {
        Err(crate::error::Error::RateLimited)
    }
}

/// Tenants the principal can switch to.
pub async fn visible(ctx: &Ctx, p: &Principal) -> Result<Vec<Tenant>> {
    let all = ctx.db.read(store::tenants::all).await?;
    Ok(all.into_iter().filter(|t| p.reaches(t)).collect())
}

pub struct NewTenant {
    pub name: String,
    pub slug: String,
}

pub async fn create(ctx: &Ctx, p: &Principal, f: NewTenant, origin: &Origin) -> Result<Tenant> {
    let now = ctx.clock.now();
    p.msp_scope()?;
    let name = parse_name("name", &f.name)?;
    let slug = if f.slug.trim().is_empty() {
        Slug::parse(&Slug::suggest(&name))?
    } else {
        Slug::parse(f.slug.trim())?
    };
    let t = Tenant {
        id: TenantId::new(),
        kind: TenantKind::Customer,
        name,
        slug,
        active: true,
        settings: Settings::default(),
    };
    let (p, o, t2) = (p.clone(), origin.clone(), t.clone());
    ctx.db
        .write(move |tx| {
            store::tenants::insert(tx, &t2, now)?;
            Audit::new(Event::TenantCreated, now)
                .tenant(t2.id)
                .by(&p, &o)
                .target("tenant", t2.id)
                .details(json!({"slug": t2.slug, "kind": "customer"}))
                .append(tx)?;
            Ok(())
        })
        .await?;
    Ok(t)
}

pub struct TenantUpdate {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub active: Option<bool>,
    pub settings: Settings,
    /// Switching to shared accounts clones one secret onto many machines (MFA-07).
    pub acknowledge_shared: bool,
}

fn s_mode(s: &crate::model::tenants::Settings) -> &'static str {
    s.login_mode.as_str()
}

/// Who may change what: identity (name, slug, status) only MSP admins, co-management and
/// seats only MSP staff; the MSP tenant stays enabled; shared mode needs its acknowledgement.
fn may_change(p: &Principal, t: &Tenant, u: &TenantUpdate) -> Result<()> {
    let identity_change = u.name.as_ref().is_some_and(|n| n.trim() != t.name)
        || u.slug.as_ref().is_some_and(|s| s.trim() != t.slug.as_str())
        || u.active.is_some_and(|a| a != t.active);
    if identity_change && !p.is_msp_admin() {
        return Err(Error::Forbidden(
            "only MSP admins rename, move or disable tenants".into(),
        ));
    }
    // Co-management and its seats are what the MSP sells: only its staff change them.
    if !p.is_msp_staff()
        && (u.settings.co_management != t.settings.co_management
            || u.settings.seats != t.settings.seats)
    {
        return Err(Error::Forbidden(
            "co-management and its seats are set by the MSP".into(),
        ));
    }
    if t.kind == TenantKind::Msp && u.active == Some(false) {
        return Err(Error::validation(
            "active",
            "the MSP tenant cannot be disabled",
        ));
    }
    u.settings.validate()?;
    if u.settings.login_mode != t.settings.login_mode
        && u.settings.login_mode == crate::model::tenants::LoginMode::Shared
        && !u.acknowledge_shared
    {
        return Err(Error::validation(
            "acknowledge_shared",
            "shared mode puts one account and one offline secret on every workstation of this tenant; tick the acknowledgement to switch",
        ));
    }
    Ok(())
}

/// What differs between `t` and `new`, field by field with old and new values (the audit's
/// details).
fn changes(t: &Tenant, new: &Tenant) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut changed = serde_json::Map::new();
    let before = serde_json::to_value(&t.settings)?;
    let after = serde_json::to_value(&new.settings)?;
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                changed.insert(k.clone(), json!({"old": b.get(k), "new": v}));
            }
        }
    }
    if new.name != t.name {
        changed.insert("name".into(), json!({"old": t.name, "new": new.name}));
    }
    if new.slug != t.slug {
        changed.insert("slug".into(), json!({"old": t.slug, "new": new.slug}));
    }
    if new.active != t.active {
        changed.insert("active".into(), json!({"old": t.active, "new": new.active}));
    }
    Ok(changed)
}

/// Changes settings (`settings.manage`); name, slug and status only for MSP admins.
pub async fn update(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    u: TenantUpdate,
    origin: &Origin,
) -> Result<Tenant> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::SettingsManage)?;
    p.require_fresh_mfa(now)?;
    may_change(p, t, &u)?;
    let name = match &u.name {
        Some(n) => parse_name("name", n)?,
        None => t.name.clone(),
    };
    let slug = match &u.slug {
        Some(s) => Slug::parse(s.trim())?,
        None => t.slug.clone(),
    };
    let active = u.active.unwrap_or(t.active);
    let out = Tenant {
        id: t.id,
        kind: t.kind,
        name: name.clone(),
        slug: slug.clone(),
        active,
        settings: u.settings.clone(),
    };
    let changed = changes(t, &out)?;
    if changed.is_empty() {
        return Ok(out);
    }
    // A new login mode, or a new offline session length, is resent with the secrets.
    let mode_change = (s_mode(&u.settings) != s_mode(&t.settings)
        || u.settings.offline_login_minutes != t.settings.offline_login_minutes)
        .then_some(u.settings.login_mode);
    let before = t.settings.clone();
    let (p, o, s, ctx2) = (p.clone(), origin.clone(), u.settings, ctx.clone());
    let woken = ctx
        .db
        .write(move |tx| {
            store::tenants::update(tx, &scope, &name, &slug, &s, active, now)?;
            Audit::new(Event::TenantUpdated, now)
                .tenant(scope.tenant())
                .by(&p, &o)
                .target("tenant", scope.tenant())
                .details(json!({"changed": changed}))
                .append(tx)?;
            let mut woken = match mode_change {
                Some(m) => super::logins::mode_changed(tx, &ctx2, &scope, m, now)?,
                None => Vec::new(),
            };
            woken.extend(super::standing_admins::on_settings(
                tx,
                &ctx2,
                &scope,
                (&before, &s),
                now,
            )?);
            Ok(woken)
        })
        .await?;
    for d in woken {
        ctx.wake.wake(d);
    }
    Ok(out)
}
