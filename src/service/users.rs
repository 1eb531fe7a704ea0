//! People in a tenant: add (with an enrollment link), promote, roles, technician
//! assignments, pause MFA, disable, erase, reset enrollment, unlock.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::setup::{ENROLL_LINK_MS, issue_link};
use crate::authz::{Permission, PermissionSet, Principal, TenantScope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::model::audit::Event;
use crate::model::roles::{BuiltinRole, RoleRef};
use crate::model::tenants::{Tenant, TenantKind, parse_name};
use crate::model::users::{Email, UserStatus, Username, pseudonym};
use crate::store::{self, users::User};

pub struct NewUser {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// Empty = generated from the email.
    pub username: String,
}

pub struct Created {
    pub user: User,
    pub enrollment_token: String,
}

/// Adds a person (status `invited`) and issues their 72-hour enrollment link.
pub async fn create(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    f: NewUser,
    origin: &Origin,
) -> Result<Created> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    let first = parse_name("first_name", &f.first_name)?;
    let last = parse_name("last_name", &f.last_name)?;
    let email = Email::parse(&f.email)?;
    let typed = f.username.trim().to_string();
    let prefix = if t.kind == TenantKind::Customer {
        "co-"
    } else {
        ""
    };
    let (p2, o) = (p.clone(), origin.clone());
    let (tid, kind) = (t.id, t.kind);
    let (uid, token) = ctx
        .db
        .write(move |tx| {
            if store::users::email_taken(&tx.reader(), email.as_str())? {
                return Err(Error::validation(
                    "email",
                    "is already used by another person on this appliance",
                ));
            }
            let max = crate::model::logins::username_max(kind);
            let username = if typed.is_empty() {
                Username::generate(prefix, &email, max, |u| {
                    store::users::username_taken(&tx.reader(), tid, u).unwrap_or(true)
                })?
            } else {
                Username::parse(&typed)?
            };
            crate::model::logins::check_account_fits(kind, username.as_str())?;
            let uid = UserId::new();
            store::users::insert(
                tx,
                &scope,
                &store::users::NewUser {
                    id: uid,
                    email: &email,
                    first_name: &first,
                    last_name: &last,
                    username: &username,
                },
                now,
            )?;
            let token = issue_link(tx, "enrollment", Some(uid), ENROLL_LINK_MS, now)?;
            Audit::new(Event::UserCreated, now)
                .tenant(tid)
                .by(&p2, &o)
                .target("user", uid)
                .details(json!({"username": username}))
                .append(tx)?;
            Ok((uid, token))
        })
        .await?;
    let user = get(ctx, &scope, uid).await?;
    Ok(Created {
        user,
        enrollment_token: token,
    })
}

/// Mails an enrollment link when SMTP is configured; returns whether it was queued. Sending
/// runs in the background: the link is shown to the admin either way.
pub fn mail_enrollment(ctx: &Ctx, user: &User, tenant: &Tenant, url: &str) -> bool {
    let Some(mailer) = ctx.mail.clone() else {
        return false;
    };
    let (to, name, url, tenant) = (
        user.email.clone(),
        user.first_name.clone(),
        url.to_string(),
        tenant.name.clone(),
    );
    tokio::spawn(async move {
        let body = format!(
            "Hello {name},\n\nYou have been added to Hourglass ({tenant}). Open this link within 72 hours to set your \
             password and connect your authenticator app:\n\n{url}\n\nThe link works once. If you did not expect it, ignore this mail.\n"
        );
        // A relay that hiccups gets two more tries, a few seconds apart.
        for attempt in 1..=3u64 {
            match mailer
                .send(&to, "Your Hourglass account", body.clone())
                .await
            {
                Ok(()) => return,
                Err(e) if attempt < 3 => {
                    tracing::info!(error = %e, attempt, "mailing an enrollment link failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(2 * attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not mail an enrollment link; hand it over from the portal")
                }
            }
        }
    });
    true
}

pub async fn get(ctx: &Ctx, scope: &TenantScope, id: UserId) -> Result<User> {
    let scope = *scope;
    ctx.db.read(move |r| store::users::get(r, &scope, id)).await
}

/// A user of the tenant as seen by someone with `users.view`.
pub async fn detail(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: UserId,
) -> Result<(User, Vec<String>, PermissionSet, Vec<TenantId>)> {
    let scope = p.scope(t, Permission::UsersView)?;
    ctx.db
        .read(move |r| {
            let u = store::users::get(r, &scope, id)?;
            let roles = store::users::roles_of(r, id)?;
            let perms = effective_permissions(r, &u, &roles)?;
            let assigned = store::users::assigned_tenants(r, id)?;
            Ok((u, roles, perms, assigned))
        })
        .await
}

/// What a user may do in their own tenant (their page shows it).
fn effective_permissions(
    r: &store::Reader<'_>,
    u: &User,
    roles: &[String],
) -> Result<PermissionSet> {
    let mut set = PermissionSet::default();
    let mut custom = Vec::new();
    for k in roles {
        match RoleRef::parse(k) {
            RoleRef::Builtin(b) => set = set.union(b.permissions()),
            RoleRef::Custom(id) => custom.push(id),
        }
    }
    Ok(set.union(store::roles::permissions_of(r, u.tenant_id, &custom)?))
}

pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<(User, Vec<String>)>> {
    let scope = p.scope(t, Permission::UsersView)?;
    ctx.db
        .read(move |r| {
            store::users::list(r, &scope)?
                .into_iter()
                .map(|u| {
                    let roles = store::users::roles_of(r, u.id)?;
                    Ok((u, roles))
                })
                .collect()
        })
        .await
}

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
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    if action.needs_step_up() {
        p.require_fresh_mfa(now)?;
    }
    let target = get(ctx, &scope, id).await?;
    may_act_on(p, &target, &action)?;
    guard(ctx, p, t, &target, &action).await?;
    let (p2, o, tenant) = (p.clone(), origin.clone(), t.clone());
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
    ctx.db
        .write(move |tx| {
            let audit = |e: Event| Audit::new(e, now).tenant(tenant.id).by(&p2, &o).target("user", id);
            let mut token = None;
            match &action {
                Action::MakeAdmin => make_admin(tx, &scope, &tenant, &p2, id, &audit)?,
                Action::AddRole(role) => {
                    check_role(&tenant, role, &customer_roles)?;
                    if role == BuiltinRole::CoManaged.key() {
                        return Err(Error::validation("role", "use Make admin to grant the co-managed role"));
                    }
                    if store::users::add_role(tx, &scope, id, role)? {
                        audit(Event::UserRoleAdded).details(json!({"role": role})).append(tx)?;
                    }
                }
                Action::RemoveRole(role) => {
                    if store::users::remove_role(tx, &scope, id, role)? {
                        audit(Event::UserRoleRemoved).details(json!({"role": role})).append(tx)?;
                    }
                }
                Action::AssignTenants { all, tenants } => {
                    if tenant.kind != TenantKind::Msp {
                        return Err(Error::validation("tenants", "only MSP technicians are assigned to customer tenants"));
                    }
                    let known = store::tenants::all(&tx.reader())?;
                    for t in tenants {
                        if !known.iter().any(|k| k.id == *t && k.kind == TenantKind::Customer) {
                            return Err(Error::validation("tenants", "unknown customer tenant"));
                        }
                    }
                    store::users::set_all_tenants(tx, &scope, id, *all, now)?;
                    store::users::set_assigned_tenants(tx, &scope, id, if *all { &[] } else { tenants })?;
                    audit(Event::UserTenantsAssigned).details(json!({"all": all, "tenants": tenants})).append(tx)?;
                }
                Action::PauseMfa { next_login_only } => {
                    let until = if *next_login_only { Timestamp(0) } else { now.plus_secs(24 * 3600) };
                    store::users::set_mfa_pause(tx, &scope, id, until, *next_login_only, now)?;
                    audit(Event::UserMfaPaused)
                        .details(json!({"mode": if *next_login_only { "next_login" } else { "24h" }, "until": until.rfc3339()}))
                        .append(tx)?;
                }
                Action::Disable => {
                    store::users::set_status(tx, &scope, id, UserStatus::Disabled, now)?;
                    store::sessions::delete_for_user(tx, id)?;
                    store::tokens::revoke_all_for_user(tx, id, now)?;
                    audit(Event::UserDisabled).append(tx)?;
                }
                Action::Enable => {
                    if target.status != UserStatus::Disabled {
                        return Err(Error::InvalidState("only a disabled account can be enabled".into()));
                    }
                    let back = if store::users::credentials_by_id(&tx.reader(), id)?.is_some_and(|c| c.password_hash.is_some()) {
                        UserStatus::Active
                    } else {
                        UserStatus::Invited
                    };
                    store::users::set_status(tx, &scope, id, back, now)?;
                    audit(Event::UserEnabled).append(tx)?;
                }
                Action::Erase => {
                    let (f, l, e) = pseudonym(&id.to_string());
                    store::users::erase(tx, &scope, id, &f, &l, &e, now)?;
                    store::sessions::delete_for_user(tx, id)?;
                    store::tokens::revoke_all_for_user(tx, id, now)?;
                    store::links::revoke_open(tx, "enrollment", Some(id), now)?;
                    audit(Event::UserErased).append(tx)?;
                }
                Action::ResetEnrollment => {
                    store::users::reset_enrollment(tx, &scope, id, now)?;
                    store::sessions::delete_for_user(tx, id)?;
                    // A token made before the reset must not come back to life after it.
                    store::tokens::revoke_all_for_user(tx, id, now)?;
                    token = Some(issue_link(tx, "enrollment", Some(id), ENROLL_LINK_MS, now)?);
                    audit(Event::UserEnrollmentReset).append(tx)?;
                }
                Action::Unlock => {
                    store::users::unlock(tx, &scope, id, now)?;
                    audit(Event::UserUnlocked).append(tx)?;
                }
                Action::EndSessions => {
                    let n = store::sessions::delete_for_user(tx, id)?;
                    audit(Event::UserSessionsEnded).details(json!({"sessions": n})).append(tx)?;
                }
                Action::Rename(name) => {
                    let u = Username::parse(name.trim())?;
                    crate::model::logins::check_account_fits(tenant.kind, u.as_str())?;
                    store::users::set_username(tx, &scope, id, &u, now)?;
                    audit(Event::UserUpdated).details(json!({"username": u})).append(tx)?;
                }
            }
            Ok(token)
        })
        .await
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

/// Changing one's own password: the current one, then the policy; every other session of
/// the person ends (SESS-04), the one making the change (`session`, its cookie value) stays.
pub async fn change_password(
    ctx: &Ctx,
    p: &Principal,
    session: &str,
    current: zeroize::Zeroizing<String>,
    new: zeroize::Zeroizing<String>,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    p.require_fresh_mfa(now)?;
    let uid = p.user_id;
    let c = ctx
        .db
        .read(move |r| store::users::credentials_by_id(r, uid))
        .await?
        .ok_or(Error::Unauthenticated)?;
    if !crate::crypto::passwords::verify(current, c.password_hash.clone()).await? {
        return Err(Error::validation(
            "current_password",
            "is not your current password",
        ));
    }
    let tid = c.user.tenant_id;
    let t = ctx
        .db
        .read(move |r| store::tenants::by_id(r, tid))
        .await?
        .ok_or(Error::NotFound)?;
    let words = vec![
        t.name,
        t.slug.to_string(),
        c.user.email.clone(),
        c.user.username.clone(),
        c.user.first_name.clone(),
        c.user.last_name.clone(),
    ];
    crate::model::passwords::check(&new, &crate::model::passwords::Context::new(words))?;
    let hash = crate::crypto::passwords::hash(new).await?;
    let (p2, o) = (p.clone(), origin.clone());
    let keep = super::auth::token_hash(session);
    ctx.db
        .write(move |tx| {
            store::users::set_password_hash(tx, uid, &hash, now)?;
            let ended = store::sessions::delete_others(tx, uid, &keep)?;
            Audit::new(Event::PasswordChanged, now)
                .tenant(tid)
                .by(&p2, &o)
                .target("user", uid)
                .details(json!({"other_sessions_ended": ended}))
                .append(tx)?;
            Ok(())
        })
        .await
}
