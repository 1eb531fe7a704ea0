//! Signing in (password, then the authenticator code), step-up, signing out, API tokens' principals and changing one's authenticator.

use super::*;

pub enum LoginOutcome {
    /// Password accepted; the returned session waits for the authenticator code.
    NeedMfa(String),
    /// Signed in (MFA paused by an admin for this login).
    Done(String),
}

/// Step one of sign-in. Unknown emails cost a dummy verify and get the same answer (AUTH-06).
pub async fn password_login(
    ctx: &Ctx,
    email: &str,
    password: Zeroizing<String>,
    old: Option<String>,
    origin: &Origin,
) -> Result<LoginOutcome> {
    let now = ctx.clock.now();
    let email = Email::parse(email).ok();
    let creds = match &email {
        Some(e) => {
            let e = e.as_str().to_string();
            ctx.db
                .read(move |r| store::users::credentials_by_email(r, &e))
                .await?
        }
        None => None,
    };
    let hash = creds.as_ref().and_then(|c| c.password_hash.clone());
    // Back-off per (email as typed, source), known or not: the answers never tell whether an
    // account exists (AUTH-06), and an attacker elsewhere cannot keep its owner waiting.
    let key = format!(
        "{}|{}",
        email
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        origin.ip.clone().unwrap_or_default()
    );
    if ctx.logins.wait_secs(&key, now, LOGIN_SLOWDOWN_AFTER as u32) > 0 {
        return Err(Error::RateLimited);
    }
    let ok = passwords::verify(password.clone(), hash.clone()).await?;
    let counted = |ctx: &Ctx| {
        ctx.logins.note(&key, now, ABSOLUTE_MS, u32::MAX);
    };
    if !ok
        || creds
            .as_ref()
            .is_none_or(|c| c.user.status != UserStatus::Active)
    {
        counted(ctx);
    } else {
        ctx.logins.clear(&key);
    }
    let Some(c) = creds else {
        return Err(unknown_account(ctx, origin, now).await?);
    };
    if c.user.login_locked || !ok || c.user.status != UserStatus::Active {
        return Err(refused(ctx, c, ok, origin, now).await?);
    }
    let rehash = match &hash {
        Some(h) if passwords::needs_rehash(h) => Some(passwords::hash(password.clone()).await?),
        _ => None,
    };
    accepted(ctx, &c.user, rehash, old, origin, now).await
}

/// No such account (or not an email at all): audited without a person, answered like a
/// wrong password (AUTH-06).
async fn unknown_account(ctx: &Ctx, origin: &Origin, now: Timestamp) -> Result<Error> {
    let o = origin.clone();
    ctx.db
        .write(move |tx| {
            Audit::new(Event::LoginFail, now)
                .failure()
                .actor(ActorKind::Anonymous, None)
                .from(&o)
                .append(tx)
                .map(|_| ())
        })
        .await?;
    Ok(Error::Unauthenticated)
}

/// The password was right: failures reset, the hash upgraded if its parameters are old, and
/// a session that waits for the code — or a full one when an admin paused MFA for this login.
async fn accepted(
    ctx: &Ctx,
    user: &User,
    rehash: Option<String>,
    old: Option<String>,
    origin: &Origin,
    now: Timestamp,
) -> Result<LoginOutcome> {
    let (uid, tenant) = (user.id, user.tenant_id);
    let paused = user.mfa_pause_next || user.mfa_pause_until > now;
    let o = origin.clone();
    let ctx2 = ctx.clone();
    ctx.db
        .write(move |tx| {
            store::users::reset_login_failures(tx, uid)?;
            if let Some(h) = &rehash {
                store::users::set_password_hash(tx, uid, h, now)?;
            }
            if let Some(old) = &old {
                store::sessions::delete(tx, &token_hash(old))?;
            }
            if !paused {
                let session = new_session(tx, &ctx2, Some(uid), Stage::Mfa, None, None, &o, now)?;
                return Ok(LoginOutcome::NeedMfa(session));
            }
            store::users::consume_mfa_pause_next(tx, uid)?;
            Audit::new(Event::LoginSuccess, now)
                .tenant(tenant)
                .actor(ActorKind::User, Some(uid.to_string()))
                .from(&o)
                .details(json!({"mfa": "paused"}))
                .append(tx)?;
            let session = new_session(tx, &ctx2, Some(uid), Stage::Full, None, None, &o, now)?;
            Ok(LoginOutcome::Done(session))
        })
        .await
}

/// A sign-in refused for a known account (locked, wrong password, not active): the audit,
/// the failure count towards the lock, and the error to answer with.
async fn refused(
    ctx: &Ctx,
    c: store::users::Credentials,
    ok: bool,
    origin: &Origin,
    now: Timestamp,
) -> Result<Error> {
    let uid = c.user.id;
    let tenant = c.user.tenant_id;
    if c.user.login_locked {
        let o = origin.clone();
        ctx.db
            .write(move |tx| {
                Audit::new(Event::LoginLocked, now)
                    .failure()
                    .tenant(tenant)
                    .actor(ActorKind::User, Some(uid.to_string()))
                    .from(&o)
                    .append(tx)
                    .map(|_| ())
            })
            .await?;
        return Ok(Error::Locked("This account is locked after too many failed sign-ins; ask an administrator to unlock it.".into()));
    }
    let o = origin.clone();
    ctx.db
        .write(move |tx| {
            let n = if ok {
                c.login_failures
            } else {
                store::users::record_login_failure(tx, uid, now, LOGIN_LOCK_AT)?
            };
            Audit::new(Event::LoginFail, now)
                .failure()
                .tenant(tenant)
                .actor(ActorKind::User, Some(uid.to_string()))
                .from(&o)
                .details(json!({"consecutive_failures": n}))
                .append(tx)?;
            if n >= LOGIN_LOCK_AT && !ok {
                Audit::new(Event::LoginLock, now)
                    .failure()
                    .tenant(tenant)
                    .target("user", uid)
                    .from(&o)
                    .append(tx)?;
            }
            Ok(())
        })
        .await?;
    Ok(Error::Unauthenticated)
}

/// Checks a TOTP code for `user` inside `tx`: ±1 step, each step once, rate-limited and
/// locking. Audits failures itself; the caller audits success.
pub fn verify_code(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    user: UserId,
    code: &str,
    origin: &Origin,
    now: Timestamp,
) -> Result<()> {
    let c = store::users::credentials_by_id(&tx.reader(), user)?.ok_or(Error::Unauthenticated)?;
    let tenant = c.user.tenant_id;
    if c.user.mfa_locked {
        return Err(Error::Locked("Authenticator codes are locked for this account after too many wrong codes; ask an administrator to unlock it.".into()));
    }
    if c.totp_window_start.millis() + MFA_WINDOW_MS > now.millis()
        && c.totp_window_count >= MFA_WINDOW_MAX
    {
        Audit::new(Event::RateLimited, now)
            .failure()
            .tenant(tenant)
            .actor(ActorKind::User, Some(user.to_string()))
            .from(origin)
            .append(tx)?;
        return Err(Error::RateLimited);
    }
    let sealed = c.totp_sealed.ok_or(Error::Unauthenticated)?;
    let secret = ctx
        .crypto
        .open(&totp_ctx(&user.to_string(), &tenant.to_string()), &sealed)?;
    match totp::check(&secret, code, now)? {
        Some(step) if store::users::accept_totp_step(tx, user, step)? => Ok(()),
        Some(_) => {
            Audit::new(Event::TokenReuse, now)
                .failure()
                .tenant(tenant)
                .actor(ActorKind::User, Some(user.to_string()))
                .from(origin)
                .append(tx)?;
            Err(Error::validation(
                "code",
                "this code was already used; wait for the next one",
            ))
        }
        None => {
            let (n, _) =
                store::users::record_totp_failure(tx, user, now, MFA_WINDOW_MS, MFA_LOCK_AT)?;
            Audit::new(Event::MfaFail, now)
                .failure()
                .tenant(tenant)
                .actor(ActorKind::User, Some(user.to_string()))
                .from(origin)
                .details(json!({"consecutive_failures": n}))
                .append(tx)?;
            if n >= MFA_LOCK_AT {
                Audit::new(Event::MfaLock, now)
                    .failure()
                    .tenant(tenant)
                    .target("user", user)
                    .from(origin)
                    .append(tx)?;
            }
            Err(Error::validation("code", "wrong code"))
        }
    }
}

/// Step two: the authenticator code. Success rotates the session id (SESS-01).
pub async fn mfa_login(ctx: &Ctx, token: &str, code: &str, origin: &Origin) -> Result<String> {
    let now = ctx.clock.now();
    let s = session(ctx, token, now)
        .await?
        .filter(|s| s.stage == Stage::Mfa)
        .ok_or(Error::Unauthenticated)?;
    let user = s.user_id.ok_or(Error::Unauthenticated)?;
    let (ctx2, o, code) = (ctx.clone(), origin.clone(), code.to_string());
    // The failure audit must commit even though the code was wrong: check in its own
    // transaction, then sign in.
    let checked = ctx.db.write({
        let (ctx2, o) = (ctx2.clone(), o.clone());
        move |tx| Ok(verify_code(tx, &ctx2, user, &code, &o, now))
    });
    checked.await??;
    ctx.db
        .write(move |tx| {
            store::sessions::delete(tx, &s.id_hash)?;
            let tenant =
                store::users::credentials_by_id(&tx.reader(), user)?.map(|c| c.user.tenant_id);
            let mut a = Audit::new(Event::LoginSuccess, now)
                .actor(ActorKind::User, Some(user.to_string()))
                .from(&o);
            if let Some(t) = tenant {
                a = a.tenant(t);
            }
            a.append(tx)?;
            new_session(tx, &ctx2, Some(user), Stage::Full, None, None, &o, now)
        })
        .await
}

/// Step-up (SESS-05): a fresh code refreshes `mfa_at` and rotates the session id.
pub async fn step_up(ctx: &Ctx, token: &str, code: &str, origin: &Origin) -> Result<String> {
    let now = ctx.clock.now();
    let s = session(ctx, token, now)
        .await?
        .filter(|s| s.stage == Stage::Full)
        .ok_or(Error::Unauthenticated)?;
    let user = s.user_id.ok_or(Error::Unauthenticated)?;
    let (ctx2, o, code) = (ctx.clone(), origin.clone(), code.to_string());
    ctx.db
        .write({
            let (ctx2, o) = (ctx2.clone(), o.clone());
            move |tx| Ok(verify_code(tx, &ctx2, user, &code, &o, now))
        })
        .await??;
    ctx.db
        .write(move |tx| {
            Audit::new(Event::StepUp, now)
                .actor(ActorKind::User, Some(user.to_string()))
                .from(&o)
                .append(tx)?;
            renew_session(tx, &s, now)
        })
        .await
}

pub async fn logout(ctx: &Ctx, token: &str, origin: &Origin) -> Result<()> {
    let now = ctx.clock.now();
    let hash = token_hash(token);
    let o = origin.clone();
    ctx.db
        .write(move |tx| {
            if let Some(s) = store::sessions::get(&tx.reader(), &hash)? {
                store::sessions::delete(tx, &hash)?;
                if let Some(u) = s.user_id.filter(|_| s.stage == Stage::Full) {
                    Audit::new(Event::Logout, now)
                        .actor(ActorKind::User, Some(u.to_string()))
                        .from(&o)
                        .append(tx)?;
                }
            }
            Ok(())
        })
        .await
}

/// The principal behind a management API bearer token.
pub async fn api_principal(ctx: &Ctx, token: &str) -> Result<Principal> {
    let now = ctx.clock.now();
    let hash = token_hash(token);
    ctx.db
        .write(move |tx| {
            let t = store::tokens::by_hash(&tx.reader(), &hash)?
                .filter(|t| t.usable(now))
                .ok_or(Error::Unauthenticated)?;
            // A sensitive-scope token stands for the step-up made when it was created.
            let mfa_at = t.sensitive.then_some(now);
            let p = principal(&tx.reader(), t.user_id, mfa_at, Some(t.id.clone()))?
                .ok_or(Error::Unauthenticated)?;
            store::tokens::touch(tx, &t.id, now)?;
            Ok(p)
        })
        .await
}

/// Starts replacing one's authenticator: a new secret parked (sealed) on the current session.
pub async fn start_totp_change(
    ctx: &Ctx,
    p: &Principal,
    token: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let now = ctx.clock.now();
    p.require_fresh_mfa(now)?;
    let secret = totp::new_secret()?;
    let hash = token_hash(token);
    let sealed = ctx
        .crypto
        .seal(&pending_ctx(&hex::encode(&hash)), &secret)?;
    ctx.db
        .write(move |tx| store::sessions::set_pending_totp(tx, &hash, Some(&sealed)))
        .await?;
    Ok(secret)
}

/// Confirms the new authenticator with one of its codes; other sessions end (SESS-04).
pub async fn finish_totp_change(
    ctx: &Ctx,
    p: &Principal,
    token: &str,
    code: &str,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    p.require_fresh_mfa(now)?;
    let s = session(ctx, token, now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let secret = pending_secret(ctx, &s)?.ok_or_else(|| {
        Error::validation("code", "start again: open the page to get a new QR code")
    })?;
    let step = totp::check(&secret, code, now)?
        .ok_or_else(|| Error::validation("code", "wrong code for the new authenticator"))?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            let uid = p2.user_id;
            let sealed = ctx2.crypto.seal(
                &totp_ctx(&uid.to_string(), &p2.tenant_id.to_string()),
                &secret,
            )?;
            store::users::set_totp(tx, uid, &sealed, now)?;
            store::users::accept_totp_step(tx, uid, step)?;
            store::sessions::set_pending_totp(tx, &s.id_hash, None)?;
            let ended = store::sessions::delete_others(tx, uid, &s.id_hash)?;
            Audit::new(Event::MfaReenrolled, now)
                .tenant(p2.tenant_id)
                .by(&p2, &o)
                .target("user", uid)
                .details(json!({"other_sessions_ended": ended}))
                .append(tx)?;
            Ok(())
        })
        .await
}
