//! First-run setup and enrollment: one-time links (stored hashed, single use, expiring) that
//! end with a password and an enrolled authenticator.

use serde_json::json;
use zeroize::Zeroizing;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::auth::{self, totp_ctx};
use crate::authz::system_scope;
use crate::clock::Timestamp;
use crate::crypto::{self, passwords, totp};
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::model::audit::{ActorKind, Event};
use crate::model::passwords::{self as policy, Context};
use crate::model::roles::BuiltinRole;
use crate::model::sessions::Stage;
use crate::model::tenants::{Settings, Slug, Tenant, TenantKind, parse_name};
use crate::model::users::{Email, Username};
use crate::store::links::LinkKind;
use crate::store::{self, WriteTx};

pub const SETUP_LINK_MS: i64 = 24 * 60 * 60 * 1000;
pub const ENROLL_LINK_MS: i64 = 72 * 60 * 60 * 1000;

/// Issues a link token of `kind`, replacing any open one for the same user.
pub fn issue_link(
    tx: &WriteTx<'_>,
    kind: LinkKind,
    user: Option<UserId>,
    ttl_ms: i64,
    now: Timestamp,
) -> Result<String> {
    store::links::revoke_open(tx, kind, user, now)?;
    let token = crypto::random_token(32)?;
    let id = uuid::Uuid::now_v7().to_string();
    store::links::insert(
        tx,
        &id,
        kind,
        &auth::token_hash(&token),
        user,
        now.plus_millis(ttl_ms),
        now,
    )?;
    Ok(token)
}

/// On a database without an MSP tenant, a fresh setup link (the previous one stops working).
pub async fn setup_link_if_needed(ctx: &Ctx) -> Result<Option<String>> {
    let now = ctx.clock.now();
    ctx.db
        .write(move |tx| {
            if store::tenants::msp(&tx.reader())?.is_some() {
                return Ok(None);
            }
            let token = issue_link(tx, LinkKind::Setup, None, SETUP_LINK_MS, now)?;
            Audit::new(Event::SetupLinkIssued, now).append(tx)?;
            Ok(Some(token))
        })
        .await
}

/// A usable link of `kind`, or Gone (used, expired, unknown) — audited.
pub async fn check_link(
    ctx: &Ctx,
    kind: LinkKind,
    token: &str,
    origin: &Origin,
) -> Result<store::links::Link> {
    let now = ctx.clock.now();
    let hash = auth::token_hash(token);
    let link = ctx
        .db
        .read(move |r| store::links::by_hash(r, &hash))
        .await?;
    match link {
        Some(l) if l.kind == kind && l.used_at.is_none() && l.expires_at > now => Ok(l),
        other => {
            let o = origin.clone();
            let why = match &other {
                None => "unknown",
                Some(l) if l.used_at.is_some() => "already used",
                Some(_) => "expired",
            };
            ctx.db
                .write(move |tx| {
                    Audit::new(Event::LinkInvalid, now)
                        .failure()
                        .actor(ActorKind::Anonymous, None)
                        .from(&o)
                        .details(json!({"kind": kind.as_str(), "reason": why}))
                        .append(tx)
                        .map(|_| ())
                })
                .await?;
            Err(Error::Gone("This link has already been used or has expired. Ask an administrator for a new one.".into()))
        }
    }
}

/// Opens a pre-auth session that holds a new TOTP secret for the enrollment page.
pub async fn start_enrollment_session(
    ctx: &Ctx,
    link: &store::links::Link,
    origin: &Origin,
) -> Result<(String, Zeroizing<Vec<u8>>)> {
    let now = ctx.clock.now();
    let secret = totp::new_secret()?;
    let (ctx2, o, s2, link_id) = (ctx.clone(), origin.clone(), secret.clone(), link.id.clone());
    let token = ctx
        .db
        .write(move |tx| {
            auth::new_session(
                tx,
                &ctx2,
                None,
                Stage::PreAuth,
                Some(&s2),
                Some(link_id),
                &o,
                now,
            )
        })
        .await?;
    Ok((token, secret))
}

/// What a setup or enrollment form submits.
pub struct Enrollment {
    pub password: Zeroizing<String>,
    pub password_confirm: Zeroizing<String>,
    pub code: String,
}

/// The form's pre-auth session, with its parked TOTP secret and link.
async fn enrollment_session(
    ctx: &Ctx,
    session_token: &str,
    link: &store::links::Link,
) -> Result<(crate::model::sessions::Session, Zeroizing<Vec<u8>>)> {
    let now = ctx.clock.now();
    let s = auth::session(ctx, session_token, now)
        .await?
        .filter(|s| s.stage == Stage::PreAuth && s.link_id.as_deref() == Some(link.id.as_str()))
        .ok_or_else(|| {
            Error::validation(
                "code",
                "this form has expired; reload the page to get a new QR code",
            )
        })?;
    let secret = auth::pending_secret(ctx, &s)?
        .ok_or_else(|| Error::validation("code", "reload the page to get a QR code"))?;
    Ok((s, secret))
}

fn check_enrollment(
    e: &Enrollment,
    secret: &[u8],
    words: Vec<String>,
    now: Timestamp,
) -> Result<u64> {
    if e.password.as_str() != e.password_confirm.as_str() {
        return Err(Error::validation(
            "password_confirm",
            "the two passwords differ",
        ));
    }
    policy::check(&e.password, &Context::new(words))?;
    totp::check(secret, &e.code, now)?.ok_or_else(|| {
        Error::validation(
            "code",
            "wrong code: check the time on your phone and try the current code",
        )
    })
}

pub struct SetupForm {
    pub msp_name: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub enrollment: Enrollment,
}

/// The MSP tenant and its first admin (role `msp_admin`, status `invited`).
fn create_msp(
    tx: &WriteTx<'_>,
    msp_name: &str,
    email: &Email,
    first: &str,
    last: &str,
    username: &Username,
    now: Timestamp,
) -> Result<(Tenant, UserId)> {
    let tenant = Tenant {
        id: TenantId::new(),
        kind: TenantKind::Msp,
        slug: Slug::parse(&Slug::suggest(msp_name))?,
        name: msp_name.to_string(),
        active: true,
        settings: Settings::default(),
    };
    store::tenants::insert(tx, &tenant, now)?;
    let scope = system_scope(tenant.id);
    let uid = UserId::new();
    let new = store::users::NewUser {
        id: uid,
        email,
        first_name: first,
        last_name: last,
        username,
    };
    store::users::insert(tx, &scope, &new, now)?;
    store::users::add_role(tx, &scope, uid, BuiltinRole::MspAdmin.key())?;
    Ok((tenant, uid))
}

/// Completes first-run setup: MSP tenant, its first admin (active, enrolled), signed in.
/// Returns the new full session's cookie value.
pub async fn complete_setup(
    ctx: &Ctx,
    link_token: &str,
    session_token: &str,
    f: SetupForm,
    origin: &Origin,
) -> Result<String> {
    let now = ctx.clock.now();
    let link = check_link(ctx, LinkKind::Setup, link_token, origin).await?;
    let msp_name = parse_name("msp_name", &f.msp_name)?;
    let first = parse_name("first_name", &f.first_name)?;
    let last = parse_name("last_name", &f.last_name)?;
    let email = Email::parse(&f.email)?;
    let username = Username::generate(
        "",
        &email,
        crate::model::logins::username_max(crate::model::tenants::TenantKind::Msp),
        |_| false,
    )?;
    let (session, secret) = enrollment_session(ctx, session_token, &link).await?;
    let words = vec![
        msp_name.clone(),
        email.as_str().to_string(),
        username.to_string(),
        first.clone(),
        last.clone(),
    ];
    let step = check_enrollment(&f.enrollment, &secret, words, now)?;
    let hash = passwords::hash(f.enrollment.password.clone()).await?;
    let (ctx2, o) = (ctx.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            if store::tenants::msp(&tx.reader())?.is_some()
                || !store::links::consume(tx, &link.id, now)?
            {
                return Err(Error::Gone("Setup has already been completed.".into()));
            }
            let (tenant, uid) = create_msp(tx, &msp_name, &email, &first, &last, &username, now)?;
            let sealed = ctx2
                .crypto
                .seal(&totp_ctx(&uid.to_string(), &tenant.id.to_string()), &secret)?;
            store::users::enroll(tx, uid, &hash, &sealed, now)?;
            store::users::accept_totp_step(tx, uid, step)?;
            store::sessions::delete(tx, &session.id_hash)?;
            Audit::new(Event::SetupCompleted, now)
                .tenant(tenant.id)
                .actor(ActorKind::User, Some(uid.to_string()))
                .from(&o)
                .target("tenant", tenant.id)
                .append(tx)?;
            Audit::new(Event::TenantCreated, now)
                .tenant(tenant.id)
                .actor(ActorKind::User, Some(uid.to_string()))
                .from(&o)
                .target("tenant", tenant.id)
                .details(json!({"kind": "msp", "slug": tenant.slug}))
                .append(tx)?;
            auth::new_session(tx, &ctx2, Some(uid), Stage::Full, None, None, &o, now)
        })
        .await
}

/// Completes an enrollment link: password + authenticator, account active, signed in.
pub async fn complete_enrollment(
    ctx: &Ctx,
    link_token: &str,
    session_token: &str,
    e: Enrollment,
    origin: &Origin,
) -> Result<String> {
    let now = ctx.clock.now();
    let link = check_link(ctx, LinkKind::Enrollment, link_token, origin).await?;
    let uid = link.user_id.ok_or(Error::NotFound)?;
    let (session, secret) = enrollment_session(ctx, session_token, &link).await?;
    let c = ctx
        .db
        .read(move |r| store::users::credentials_by_id(r, uid))
        .await?
        .ok_or(Error::NotFound)?;
    let tid = c.user.tenant_id;
    let tenant = ctx
        .db
        .read(move |r| store::tenants::by_id(r, tid))
        .await?
        .ok_or(Error::NotFound)?;
    let words = vec![
        tenant.name.clone(),
        tenant.slug.to_string(),
        c.user.email.clone(),
        c.user.username.clone(),
        c.user.first_name.clone(),
        c.user.last_name.clone(),
    ];
    let step = check_enrollment(&e, &secret, words, now)?;
    let hash = passwords::hash(e.password.clone()).await?;
    let (ctx2, o) = (ctx.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            if !store::links::consume(tx, &link.id, now)? {
                return Err(Error::Gone(
                    "This link has already been used or has expired.".into(),
                ));
            }
            let sealed = ctx2
                .crypto
                .seal(&totp_ctx(&uid.to_string(), &tid.to_string()), &secret)?;
            store::users::enroll(tx, uid, &hash, &sealed, now)?;
            store::users::accept_totp_step(tx, uid, step)?;
            store::sessions::delete(tx, &session.id_hash)?;
            Audit::new(Event::UserEnrolled, now)
                .tenant(tid)
                .actor(ActorKind::User, Some(uid.to_string()))
                .target("user", uid)
                .from(&o)
                .append(tx)?;
            auth::new_session(tx, &ctx2, Some(uid), Stage::Full, None, None, &o, now)
        })
        .await
}

/// `hourglass admin setup`: MSP tenant and its first admin, invited; returns the enrollment token.
pub fn headless_setup(
    ctx: &Ctx,
    msp_name: &str,
    first: &str,
    last: &str,
    email: &str,
) -> Result<String> {
    let now = ctx.clock.now();
    let msp_name = parse_name("msp-name", msp_name)?;
    let first = parse_name("first-name", first)?;
    let last = parse_name("last-name", last)?;
    let email = Email::parse(email)?;
    ctx.db.write_blocking(|tx| {
        if store::tenants::msp(&tx.reader())?.is_some() {
            return Err(Error::Conflict(
                "setup has already been done on this appliance".into(),
            ));
        }
        let username = Username::generate(
            "",
            &email,
            crate::model::logins::username_max(crate::model::tenants::TenantKind::Msp),
            |_| false,
        )?;
        let (tenant, uid) = create_msp(tx, &msp_name, &email, &first, &last, &username, now)?;
        store::links::revoke_open(tx, LinkKind::Setup, None, now)?;
        let token = issue_link(tx, LinkKind::Enrollment, Some(uid), ENROLL_LINK_MS, now)?;
        Audit::new(Event::SetupCompleted, now)
            .tenant(tenant.id)
            .target("tenant", tenant.id)
            .details(json!({"headless": true}))
            .append(tx)?;
        Audit::new(Event::UserCreated, now)
            .tenant(tenant.id)
            .target("user", uid)
            .details(json!({"role": "msp_admin"}))
            .append(tx)?;
        Ok(token)
    })
}
