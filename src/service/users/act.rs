//! Actions on a person (promote, roles, assignments, MFA pause, disable, erase, reset, unlock, rename) and who may take them.

use super::*;
use crate::ids::DeviceId;

/// The actions on a user's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    MakeAdmin,
    AddRole(String),
    RemoveRole(String),
    /// MSP technicians: all customer tenants, or these.
    AssignTenants {
        all: bool,
        tenants: Vec<TenantId>,
    },
    PauseMfa {
        next_login_only: bool,
    },
    Disable,
    Enable,
    Erase,
    ResetEnrollment,
    Unlock,
    EndSessions,
    Rename(String),
}

impl Action {
    fn needs_step_up(&self) -> bool {
        !matches!(
            self,
            Action::Rename(_) | Action::EndSessions | Action::Enable
        )
    }
}

/// Runs one action; returns a new enrollment token for `ResetEnrollment`.
pub async fn act(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: UserId,
    action: Action,
    origin: &Origin,
) -> Result<Option<String>> {
    Ok(act_reporting(ctx, p, t, id, action, origin).await?.token)
}

/// What an action did beyond its own change: a new enrollment token (`ResetEnrollment`), and
/// what the person held that ended with it (disable, erase, a role removed, unassigned).
#[derive(Debug, Default)]
pub struct Acted {
    pub token: Option<String>,
    pub ended: Option<Ended>,
}

/// Carried out of an action's transaction: the devices to wake and what ended.
#[derive(Default)]
pub(super) struct Report {
    pub(super) woken: Vec<DeviceId>,
    ended: Option<Ended>,
}

impl Report {
    fn offboarded(&mut self, o: crate::service::logins::Offboarded, sessions: u64, tokens: usize) {
        self.ended = Some(Ended {
            sessions,
            tokens,
            logins: o.logins_ended,
            offline_secrets: o.offline_secrets_replaced,
            ..Ended::default()
        });
        self.woken.extend(o.woken);
    }
}

/// `act`, saying what ended with it (the portal shows it).
pub async fn act_reporting(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: UserId,
    action: Action,
    origin: &Origin,
) -> Result<Acted> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    if action.needs_step_up() {
        p.require_fresh_mfa(now)?;
    }
    let target = get(ctx, &scope, id).await?;
    may_act_on(p, &target, &action)?;
    guard(ctx, p, t, &target, &action).await?;
    let (p2, o, tenant, ctx2) = (p.clone(), origin.clone(), t.clone(), ctx.clone());
    // An erasure empties the WAL after the commit (the person's old rows with it).
    let erasing = action == Action::Erase;
    let customer_roles: Vec<String> = if t.kind == TenantKind::Customer {
        let s = scope;
        ctx.db
            .read(move |r| store::roles::list(r, &s))
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        Vec::new()
    };
    let (token, report) = ctx
        .db
        .write(move |tx| {
            let audit = |e: Event| {
                Audit::new(e, now)
                    .tenant(tenant.id)
                    .by(&p2, &o)
                    .target("user", id)
            };
            let c = Change {
                ctx: &ctx2,
                scope: &scope,
                tenant: &tenant,
                target: &target,
                actor: &p2,
                now,
            };
            let mut report = Report::default();
            let token = apply(tx, &c, &action, &customer_roles, &audit, &mut report)?;
            Ok((token, report))
        })
        .await?;
    let mut ended = report.ended;
    if let Some(e) = ended.as_mut() {
        e.offline_workstations = super::super::devices::offline_among(ctx, &report.woken).await?;
    }
    for d in report.woken {
        ctx.wake.wake(d);
    }
    if erasing && !ctx.db.truncate_wal()? {
        // A reader still holds the older pages; the next checkpoint overwrites them.
        tracing::info!("erasure: the WAL could not be emptied at once");
    }
    Ok(Acted { token, ended })
}

/// What one action is carried out on: in this tenant, on this person, by this principal.
pub(super) struct Change<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) scope: &'a TenantScope,
    pub(super) tenant: &'a Tenant,
    pub(super) target: &'a User,
    pub(super) actor: &'a Principal,
    pub(super) now: Timestamp,
}

/// One action inside its transaction, with its audit entry; one arm per action.
fn apply(
    tx: &WriteTx<'_>,
    c: &Change<'_>,
    action: &Action,
    customer_roles: &[String],
    audit: &dyn Fn(Event) -> Audit,
    report: &mut Report,
) -> Result<Option<String>> {
    let (scope, id, now) = (c.scope, c.target.id, c.now);
    let mut token = None;
    match action {
        Action::MakeAdmin => make_admin(tx, scope, c.tenant, c.actor, id, audit)?,
        Action::AddRole(role) => add_role(tx, c, role, customer_roles, audit)?,
        Action::RemoveRole(role) => {
            if store::users::remove_role(tx, scope, id, role)? {
                let o = crate::service::logins::offboard(tx, c.ctx, id, "a role was removed", now)?;
                audit(Event::UserRoleRemoved)
                    .details(json!({"role": role, "logins_ended": o.logins_ended,
                        "offline_secrets_replaced": o.offline_secrets_replaced}))
                    .append(tx)?;
                report.offboarded(o, 0, 0);
            }
        }
        Action::AssignTenants { all, tenants } => {
            assign_tenants(tx, c, *all, tenants, audit, report)?
        }
        Action::PauseMfa { next_login_only } => {
            let until = if *next_login_only {
                Timestamp(0)
            } else {
                now.plus_secs(24 * 3600)
            };
            store::users::set_mfa_pause(tx, scope, id, until, *next_login_only, now)?;
            audit(Event::UserMfaPaused)
                .details(json!({"mode": if *next_login_only { "next_login" } else { "24h" }, "until": until.rfc3339()}))
                .append(tx)?;
        }
        Action::Disable => {
            store::users::set_status(tx, scope, id, UserStatus::Disabled, now)?;
            let ended = end_everything(tx, c, "disabled", report)?;
            audit(Event::UserDisabled).details(ended).append(tx)?;
        }
        Action::Enable => enable(tx, c, audit)?,
        Action::Erase => super::erase::erase(tx, c, audit, report)?,
        Action::ResetEnrollment => {
            store::users::reset_enrollment(tx, scope, id, now)?;
            store::sessions::delete_for_user(tx, id)?;
            // A token made before the reset must not come back to life after it.
            store::tokens::revoke_all_for_user(tx, id, now)?;
            token = Some(issue_link(
                tx,
                LinkKind::Enrollment,
                Some(id),
                ENROLL_LINK_MS,
                now,
            )?);
            audit(Event::UserEnrollmentReset).append(tx)?;
        }
        Action::Unlock => {
            store::users::unlock(tx, scope, id, now)?;
            audit(Event::UserUnlocked).append(tx)?;
        }
        Action::EndSessions => {
            let n = store::sessions::delete_for_user(tx, id)?;
            audit(Event::UserSessionsEnded)
                .details(json!({"sessions": n}))
                .append(tx)?;
        }
        Action::Rename(name) => {
            let u = Username::parse(name.trim())?;
            crate::model::logins::check_account_fits(c.tenant.kind, u.as_str())?;
            store::users::set_username(tx, scope, id, &u, now)?;
            // What changed, not the name (erasure replaces it; DESIGN §6).
            audit(Event::UserUpdated)
                .details(json!({"changed": "username"}))
                .append(tx)?;
        }
    }
    Ok(token)
}

/// Offboarding, in the transaction that disables or erases the person: their portal
/// sessions and API tokens end, their technician logins are revoked on the workstations and
/// the offline secrets they were shown are replaced. Returns what was ended (audit details).
pub(super) fn end_everything(
    tx: &WriteTx<'_>,
    c: &Change<'_>,
    why: &str,
    report: &mut Report,
) -> Result<serde_json::Value> {
    let id = c.target.id;
    let sessions = store::sessions::delete_for_user(tx, id)?;
    let tokens = store::tokens::revoke_all_for_user(tx, id, c.now)?;
    let why = format!("the person was {why}");
    let o = crate::service::logins::offboard(tx, c.ctx, id, &why, c.now)?;
    let (requests, woken) =
        crate::service::requests::offboard_requester(tx, c.ctx, id, &why, c.now)?;
    let details = json!({"sessions": sessions, "tokens": tokens, "logins_ended": o.logins_ended,
        "requests_ended": requests, "offline_secrets_replaced": o.offline_secrets_replaced});
    report.offboarded(o, sessions, tokens);
    if let Some(e) = report.ended.as_mut() {
        e.requests = requests;
    }
    report.woken.extend(woken);
    Ok(details)
}

fn add_role(
    tx: &WriteTx<'_>,
    c: &Change<'_>,
    role: &str,
    customer_roles: &[String],
    audit: &dyn Fn(Event) -> Audit,
) -> Result<()> {
    check_role(c.tenant, role, customer_roles)?;
    if role == BuiltinRole::CoManaged.key() {
        return Err(Error::validation(
            "role",
            "use Make admin to grant the co-managed role",
        ));
    }
    if store::users::add_role(tx, c.scope, c.target.id, role)? {
        audit(Event::UserRoleAdded)
            .details(json!({"role": role}))
            .append(tx)?;
    }
    Ok(())
}

fn assign_tenants(
    tx: &WriteTx<'_>,
    c: &Change<'_>,
    all: bool,
    tenants: &[TenantId],
    audit: &dyn Fn(Event) -> Audit,
    report: &mut Report,
) -> Result<()> {
    if c.tenant.kind != TenantKind::Msp {
        return Err(Error::validation(
            "tenants",
            "only MSP technicians are assigned to customer tenants",
        ));
    }
    let known = store::tenants::all(&tx.reader())?;
    for t in tenants {
        if !known
            .iter()
            .any(|k| k.id == *t && k.kind == TenantKind::Customer)
        {
            return Err(Error::validation("tenants", "unknown customer tenant"));
        }
    }
    let id = c.target.id;
    store::users::set_all_tenants(tx, c.scope, id, all, c.now)?;
    store::users::set_assigned_tenants(tx, c.scope, id, if all { &[] } else { tenants })?;
    // Unassigned from a tenant: what they hold there ends with the assignment.
    let o = crate::service::logins::offboard(tx, c.ctx, id, "unassigned from the tenant", c.now)?;
    audit(Event::UserTenantsAssigned)
        .details(
            json!({"all": all, "tenants": tenants, "logins_ended": o.logins_ended,
            "offline_secrets_replaced": o.offline_secrets_replaced}),
        )
        .append(tx)?;
    report.offboarded(o, 0, 0);
    Ok(())
}

/// Back to active, or to invited when the person never set a password.
fn enable(tx: &WriteTx<'_>, c: &Change<'_>, audit: &dyn Fn(Event) -> Audit) -> Result<()> {
    if c.target.status != UserStatus::Disabled {
        return Err(Error::InvalidState(
            "only a disabled account can be enabled".into(),
        ));
    }
    let id = c.target.id;
    let back = if store::users::credentials_by_id(&tx.reader(), id)?
        .is_some_and(|c| c.password_hash.is_some())
    {
        UserStatus::Active
    } else {
        UserStatus::Invited
    };
    store::users::set_status(tx, c.scope, id, back, c.now)?;
    audit(Event::UserEnabled).append(tx)?;
    Ok(())
}

/// What nobody may do, whatever their roles: act on an erased person (but end their
/// sessions), pause their own MFA, or disable, erase or demote themselves.
fn may_act_on(p: &Principal, target: &User, action: &Action) -> Result<()> {
    if target.status == UserStatus::Erased && *action != Action::EndSessions {
        return Err(Error::InvalidState("this person has been erased".into()));
    }
    let own = target.id == p.user_id;
    if own && matches!(action, Action::PauseMfa { .. }) {
        return Err(Error::Forbidden("you cannot pause your own MFA".into()));
    }
    if own
        && matches!(
            action,
            Action::Disable | Action::Erase | Action::RemoveRole(_)
        )
    {
        return Err(Error::Forbidden(
            "you cannot do this to your own account".into(),
        ));
    }
    Ok(())
}

/// Make admin: the MSP's admin role, or in a customer tenant the co-managed role, within the
/// tenant's seats and only while co-management is on.
fn make_admin(
    tx: &store::WriteTx<'_>,
    scope: &TenantScope,
    tenant: &Tenant,
    by: &Principal,
    id: UserId,
    audit: &dyn Fn(Event) -> Audit,
) -> Result<()> {
    let role = match tenant.kind {
        TenantKind::Msp => BuiltinRole::MspAdmin,
        TenantKind::Customer => {
            if !tenant.settings.co_management {
                return Err(Error::InvalidState(if by.is_msp_staff() {
                    "Co-management is off for this tenant: turn it on in the tenant settings before making anyone an admin.".into()
                } else {
                    "Co-management is off for this tenant; your MSP decides whether it is on."
                        .into()
                }));
            }
            BuiltinRole::CoManaged
        }
    };
    let have = store::users::roles_of(&tx.reader(), id)?;
    if have.iter().any(|r| r == role.key()) {
        return Ok(());
    }
    if role == BuiltinRole::CoManaged {
        let used = store::users::count_with_role(&tx.reader(), scope, role.key())?;
        if used >= i64::from(tenant.settings.seats) {
            return Err(Error::InvalidState(if by.is_msp_staff() {
                format!(
                    "All {} co-managed seats of this tenant are in use: raise the seat count in the tenant settings first.",
                    tenant.settings.seats
                )
            } else {
                format!(
                    "All {} co-managed seats of this tenant are in use; ask your MSP for more seats.",
                    tenant.settings.seats
                )
            }));
        }
    }
    store::users::add_role(tx, scope, id, role.key())?;
    audit(Event::UserMadeAdmin)
        .details(json!({"role": role.key()}))
        .append(tx)?;
    Ok(())
}

/// What a person holds in their tenant: their roles' permissions, and whether one of them
/// is an admin role (MSP admin, co-managed admin).
async fn standing(ctx: &Ctx, t: &Tenant, id: UserId) -> Result<(PermissionSet, bool)> {
    let tenant = t.id;
    ctx.db
        .read(move |r| {
            let keys = store::users::roles_of(r, id)?;
            let mut set = PermissionSet::default();
            let mut admin = false;
            let mut custom = Vec::new();
            for k in keys {
                match BuiltinRole::parse(&k) {
                    Some(b) => {
                        admin |= matches!(b, BuiltinRole::MspAdmin | BuiltinRole::CoManaged);
                        set = set.union(b.permissions());
                    }
                    None => custom.push(k),
                }
            }
            Ok((
                set.union(store::roles::permissions_of(r, tenant, &custom)?),
                admin,
            ))
        })
        .await
}

/// Nobody raises their own standing or anyone else's above their own (DESIGN §1): roles are
/// changed only by a tenant admin, never one's own, and never to a permission the actor does
/// not hold; locks, MFA pauses, enrollment resets and the like only for people no more
/// privileged than the actor. A refusal is `Forbidden` (the portal and API audit it).
async fn guard(ctx: &Ctx, p: &Principal, t: &Tenant, target: &User, action: &Action) -> Result<()> {
    let mine = p.permissions_in(t).unwrap_or_default();
    let own = target.id == p.user_id;
    match action {
        Action::MakeAdmin
        | Action::AddRole(_)
        | Action::RemoveRole(_)
        | Action::AssignTenants { .. } => {
            if own {
                return Err(Error::Forbidden("nobody changes their own roles".into()));
            }
            if !p.is_tenant_admin(t) {
                return Err(Error::Forbidden(
                    "changing roles needs the tenant admin role (MSP admin or co-managed admin)"
                        .into(),
                ));
            }
            if let Action::AddRole(role) = action {
                let (wanted, _) = role_standing(ctx, t, role).await?;
                if !wanted.is_subset(mine) {
                    return Err(Error::Forbidden(
                        "you cannot grant a permission you do not hold yourself".into(),
                    ));
                }
            }
            Ok(())
        }
        _ if own => Ok(()),
        _ => {
            let (theirs, admin) = standing(ctx, t, target.id).await?;
            if !theirs.is_subset(mine) || (admin && !p.is_tenant_admin(t)) {
                return Err(Error::Forbidden(
                    "this person holds more rights than you: ask someone who holds at least theirs"
                        .into(),
                ));
            }
            Ok(())
        }
    }
}

/// The permissions a role key grants in `t` (unknown keys grant nothing; they are refused
/// later with a clear message).
async fn role_standing(ctx: &Ctx, t: &Tenant, role: &str) -> Result<(PermissionSet, bool)> {
    if let Some(b) = BuiltinRole::parse(role) {
        return Ok((
            b.permissions(),
            matches!(b, BuiltinRole::MspAdmin | BuiltinRole::CoManaged),
        ));
    }
    let (tenant, key) = (t.id, role.to_string());
    let set = ctx
        .db
        .read(move |r| store::roles::permissions_of(r, tenant, &[key]))
        .await?;
    Ok((set, false))
}

/// A role that can be assigned in this tenant: its kind's built-in roles or its custom roles.
fn check_role(t: &Tenant, role: &str, custom: &[String]) -> Result<()> {
    match BuiltinRole::parse(role) {
        Some(b) if b.for_msp() == (t.kind == TenantKind::Msp) => Ok(()),
        Some(_) => Err(Error::validation(
            "role",
            "that role belongs to the other kind of tenant",
        )),
        None if custom.iter().any(|c| c == role) => Ok(()),
        None => Err(Error::validation("role", "unknown role")),
    }
}
