//! Sign-in: password (argon2id, throttled, locking), TOTP (replay-proof, rate-limited,
//! locking), server-side sessions with idle/absolute limits, and step-up.

use serde_json::json;
use zeroize::Zeroizing;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::Principal;
use crate::clock::Timestamp;
use crate::crypto::{self, SealContext, passwords, totp};
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::model::audit::{ActorKind, Event};
use crate::model::roles::RoleRef;
use crate::model::sessions::{Session, Stage};
use crate::model::users::{Email, User, UserStatus};
use crate::store::{self, WriteTx};

mod sign_in;
pub use sign_in::*;

pub const IDLE_MS: i64 = 15 * 60 * 1000;
pub const ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// Pre-auth and half-authenticated sessions live briefly.
pub const PRE_AUTH_MS: i64 = 30 * 60 * 1000;
pub const LOGIN_LOCK_AT: i64 = 100;
pub const LOGIN_SLOWDOWN_AFTER: i64 = 5;
pub const MFA_LOCK_AT: i64 = 100;
pub const MFA_WINDOW_MS: i64 = 15 * 60 * 1000;
pub const MFA_WINDOW_MAX: i64 = 10;

pub fn token_hash(token: &str) -> Vec<u8> {
    crypto::sha256(token.as_bytes()).to_vec()
}

/// The CSRF synchronizer token of a session (WEB-02): a MAC of the sign-in's random seed,
/// so it survives a step-up's id renewal (the open page keeps working) and is not stored.
pub fn csrf_token(ctx: &Ctx, s: &Session) -> String {
    let seed = s.csrf_seed.as_deref().unwrap_or(&s.id_hash);
    ctx.crypto.mac_hex("csrf", seed)[..40].to_string()
}

/// The sign-in form's CSRF token, from the pre-auth cookie (no database row behind it).
pub fn pre_auth_csrf(ctx: &Ctx, pre_cookie: &str) -> String {
    ctx.crypto.mac_hex("pre-auth-csrf", pre_cookie.as_bytes())[..40].to_string()
}

/// The CSRF token of the live session behind a cookie value.
pub async fn csrf_for(ctx: &Ctx, token: &str) -> Result<Option<String>> {
    let s = session(ctx, token, ctx.clock.now()).await?;
    Ok(s.map(|s| csrf_token(ctx, &s)))
}

pub fn totp_ctx<'a>(user_id: &'a str, tenant_id: &'a str) -> SealContext<'a> {
    SealContext {
        table: "users",
        column: "totp_sealed",
        row_id: user_id,
        tenant_id,
    }
}

fn pending_ctx(hash_hex: &str) -> SealContext<'_> {
    SealContext {
        table: "web_sessions",
        column: "pending_totp",
        row_id: hash_hex,
        tenant_id: "",
    }
}

/// A new session row of `stage`; returns the cookie value (the only copy of the id).
#[allow(clippy::too_many_arguments)] // each is a distinct column of the new row
pub fn new_session(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    user: Option<UserId>,
    stage: Stage,
    pending_totp: Option<&[u8]>,
    link_id: Option<String>,
    origin: &Origin,
    now: Timestamp,
) -> Result<String> {
    let token = crypto::random_token(32)?;
    let hash = token_hash(&token);
    let sealed = match pending_totp {
        Some(secret) => Some(ctx.crypto.seal(&pending_ctx(&hex::encode(&hash)), secret)?),
        None => None,
    };
    let life = if stage == Stage::Full {
        ABSOLUTE_MS
    } else {
        PRE_AUTH_MS
    };
    let mut seed = vec![0u8; 16];
    crypto::fill_random(&mut seed)?;
    store::sessions::insert(
        tx,
        &Session {
            id_hash: hash,
            user_id: user,
            stage,
            pending_totp: sealed,
            link_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus_millis(life),
            mfa_at: if stage == Stage::Full {
                now
            } else {
                Timestamp(0)
            },
            ip: origin.ip.clone(),
            user_agent: None,
            csrf_seed: Some(seed),
        },
    )?;
    Ok(token)
}

/// Step-up's new session id (SESS-01): the same sign-in — its limits, its CSRF seed — with a
/// fresh factor time. Returns the new cookie value.
fn renew_session(tx: &WriteTx<'_>, old: &Session, now: Timestamp) -> Result<String> {
    let token = crypto::random_token(32)?;
    store::sessions::delete(tx, &old.id_hash)?;
    store::sessions::insert(
        tx,
        &Session {
            id_hash: token_hash(&token),
            csrf_seed: Some(old.csrf_seed.clone().unwrap_or_else(|| old.id_hash.clone())),
            last_seen_at: now,
            mfa_at: now,
            pending_totp: None,
            ..old.clone()
        },
    )?;
    Ok(token)
}

/// The session behind a cookie, if it is still alive (idle and absolute limits, SESS-03).
pub async fn session(ctx: &Ctx, token: &str, now: Timestamp) -> Result<Option<Session>> {
    let hash = token_hash(token);
    let db = ctx.db.clone();
    let s = db.read(move |r| store::sessions::get(r, &hash)).await?;
    let Some(s) = s else { return Ok(None) };
    if s.expires_at <= now || s.last_seen_at.plus_millis(IDLE_MS) <= now {
        let h = s.id_hash.clone();
        ctx.db
            .write(move |tx| store::sessions::delete(tx, &h))
            .await?;
        return Ok(None);
    }
    // Sliding idle window; written at most once a minute to keep reads cheap.
    if s.stage == Stage::Full && now.millis() - s.last_seen_at.millis() > 60_000 {
        let h = s.id_hash.clone();
        ctx.db
            .write(move |tx| store::sessions::touch(tx, &h, now))
            .await?;
    }
    Ok(Some(s))
}

/// Opens the TOTP secret parked in a pre-auth session (setup and enrollment pages).
pub fn pending_secret(ctx: &Ctx, s: &Session) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match &s.pending_totp {
        Some(b) => Ok(Some(
            ctx.crypto.open(&pending_ctx(&hex::encode(&s.id_hash)), b)?,
        )),
        None => Ok(None),
    }
}

/// Builds the principal of a signed-in user (roles, assignments), or None if they may not act.
pub fn principal(
    r: &store::Reader<'_>,
    user: UserId,
    mfa_at: Option<Timestamp>,
    api_token: Option<String>,
) -> Result<Option<Principal>> {
    let Some(c) = store::users::credentials_by_id(r, user)? else {
        return Ok(None);
    };
    if c.user.status != UserStatus::Active {
        return Ok(None);
    }
    let Some(tenant) = store::tenants::by_id(r, c.user.tenant_id)? else {
        return Ok(None);
    };
    let roles = store::users::roles_of(r, user)?;
    let mut builtin = Vec::new();
    let mut custom_keys = Vec::new();
    for k in roles {
        match RoleRef::parse(&k) {
            RoleRef::Builtin(b) => builtin.push(b),
            RoleRef::Custom(id) => custom_keys.push(id),
        }
    }
    let p = Principal {
        user_id: user,
        tenant_id: tenant.id,
        tenant_kind: tenant.kind,
        custom: store::roles::permissions_of(r, tenant.id, &custom_keys)?,
        builtin,
        all_tenants: c.user.all_tenants,
        assigned: store::users::assigned_tenants(r, user)?,
        mfa_at,
        api_token,
    };
    if !tenant.active && !p.is_msp_admin() {
        return Ok(None);
    }
    Ok(Some(p))
}

/// The signed-in person as the portal needs them: their principal (with when the session
/// last proved the authenticator) and their own record. None when the account is gone.
pub async fn signed_in(
    ctx: &Ctx,
    uid: UserId,
    mfa_at: Timestamp,
) -> Result<Option<(Principal, User)>> {
    ctx.db
        .read(move |r| {
            let p = principal(r, uid, Some(mfa_at), None)?;
            let u = store::users::credentials_by_id(r, uid)?.map(|c| c.user);
            Ok(p.zip(u))
        })
        .await
}

/// A person's open portal sessions, newest first (My account lists them).
pub async fn sessions_of(ctx: &Ctx, uid: UserId) -> Result<Vec<Session>> {
    ctx.db
        .read(move |r| store::sessions::list_for_user(r, uid))
        .await
}

/// Whether the appliance still waits for its first-run setup (no MSP tenant yet).
pub async fn needs_setup(ctx: &Ctx) -> Result<bool> {
    Ok(ctx.db.read(store::tenants::msp).await?.is_none())
}

/// The email of the person an enrollment link is for (shown on the enrollment page).
pub async fn email_of(ctx: &Ctx, uid: UserId) -> Result<Option<String>> {
    Ok(ctx
        .db
        .read(move |r| store::users::credentials_by_id(r, uid))
        .await?
        .map(|c| c.user.email))
}
