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
use crate::model::users::{Email, User, UserStatus, Username, pseudonym};
use crate::store::links::LinkKind;
use crate::store::{self, WriteTx};

mod act;
mod ended;
mod erase;
pub use act::*;
pub use ended::Ended;

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
            let token = issue_link(tx, LinkKind::Enrollment, Some(uid), ENROLL_LINK_MS, now)?;
            Audit::new(Event::UserCreated, now)
                .tenant(tid)
                .by(&p2, &o)
                // The username is joined in when shown: erasure replaces it (DESIGN §6).
                .target("user", uid)
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
