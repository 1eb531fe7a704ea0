//! Starting a technician login and revealing its password once (CRED-01, CRED-06).

use super::*;
use crate::store::Reader;

/// Starts a login session (`devices.login`, step-up): the account is created or enabled,
/// given a fresh password and administrator rights until the session ends.
pub async fn start(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: DeviceId,
    minutes: Option<i64>,
    ticket: Option<String>,
    origin: &Origin,
) -> Result<Login> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesLogin)?;
    p.require_fresh_mfa(now)?;
    let minutes = rules::check_minutes(minutes, t.settings.jit_max_minutes)?;
    let ticket = crate::model::requests::check_ticket(ticket.as_deref())?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let l = ctx
        .db
        .write(move |tx| {
            let (t, account) = account_on(&tx.reader(), &scope, device, &p2)?;
            let id = LoginId::new();
            let expires = now.plus_secs(i64::from(minutes) * 60);
            let n = store::logins::NewLogin {
                id,
                device,
                user: p2.user_id,
                account: &account,
                minutes,
                ticket: ticket.as_deref(),
                expires_at: expires,
            };
            store::logins::insert(tx, &scope, &n, now)?;
            let l = store::logins::get(&tx.reader(), &scope, id)?;
            order(tx, &ctx2, &scope, &l, expires, now)?;
            if t.settings.login_mode == LoginMode::Named
                && store::logins::current_secret(&tx.reader(), &scope, Some(device))?.is_none()
            {
                new_secret(tx, &ctx2, &scope, Some(device), &[device], now)?;
            }
            tell_hooks(
                tx,
                &ctx2,
                &scope,
                &l,
                "login.started",
                "Technician login started",
                now,
            )?;
            audit_for(Event::LoginStarted, &l, now)
                .by(&p2, &o)
                .details(json!({"shared": t.settings.login_mode == LoginMode::Shared,
                    "minutes": minutes, "ticket": l.ticket}))
                .append(tx)?;
            Ok(l)
        })
        .await?;
    ctx.wake.wake(device);
    crate::service::webhooks::kick(ctx);
    Ok(l)
}

/// The tenant, and the account this person logs in with on this (active) workstation.
fn account_on(
    r: &Reader<'_>,
    scope: &TenantScope,
    device: DeviceId,
    p: &Principal,
) -> Result<(Tenant, String)> {
    let d = store::devices::get(r, scope, device)?;
    if !d.active {
        return Err(Error::InvalidState(
            "this workstation has been retired".into(),
        ));
    }
    let t = store::tenants::get(r, scope)?;
    let me = store::users::credentials_by_id(r, p.user_id)?
        .ok_or(Error::NotFound)?
        .user;
    let shared = store::logins::shared_account(r, scope)?;
    let account = rules::account_for(
        t.settings.login_mode,
        shared.as_deref(),
        p.tenant_kind,
        me.username.as_str(),
    )?;
    Ok((t, account))
}

/// The workstation's orders for a new login: the account with its fresh (escrowed)
/// password, and administrator rights until the deadline.
fn order(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    l: &Login,
    expires: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let account = l.account.clone();
    escrow_and_order(
        tx,
        ctx,
        scope,
        l.into(),
        CredentialReason::Login,
        |password, version| Action::EnsureAccount {
            account: account.clone(),
            password,
            admin: true,
            version,
        },
        now,
    )?;
    // The agent removes the rights and disables the account at the deadline on its own
    // clock, even if the appliance cannot reach it then.
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        l.device_id,
        &Action::GrantAdmin {
            account: l.account.clone(),
            expires_at: expires.millis(),
            session: None,
        },
        i64::from(l.minutes) * 60_000,
        now,
    )?;
    Ok(())
}

/// The password of one's own open session, once (CRED-06): a second view is NotFound.
pub async fn reveal(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: LoginId,
    origin: &Origin,
) -> Result<(Login, Zeroizing<String>)> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesLogin)?;
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            let l = store::logins::get(&tx.reader(), &scope, id)?;
            if l.user_id != p2.user_id || !l.state.is_open() {
                return Ok(Err(Error::NotFound));
            }
            if !store::logins::mark_revealed(tx, &scope, id)? {
                return Ok(Err(Error::NotFound));
            }
            let c = store::logins::credential_of_login(&tx.reader(), &scope, id)?;
            let opened = c
                .password_sealed
                .as_deref()
                .ok_or(Error::NotFound)
                .and_then(|b| {
                    ctx2.crypto
                        .open(&password_ctx(&c.id, &scope.tenant().to_string()), b)
                });
            let Ok(plain) = opened else {
                decrypt_failed(tx, &l, "credentials.password_sealed", now)?;
                return Ok(Err(Error::internal("cannot open an escrowed password")));
            };
            let password = Zeroizing::new(String::from_utf8_lossy(&plain).to_string());
            audit_for(Event::SensitiveRead, &l, now)
                .by(&p2, &o)
                .details(json!({"what": "password"}))
                .append(tx)?;
            Ok(Ok((l, password)))
        })
        .await?
}

pub async fn list(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: Option<DeviceId>,
) -> Result<Vec<Login>> {
    let scope = p.scope(t, Permission::DevicesView)?;
    ctx.db
        .read(move |r| store::logins::list(r, &scope, device, 200))
        .await
}

/// A workstation's escrow history (who, when, which state; never the passwords).
pub async fn history(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: DeviceId,
) -> Result<Vec<Credential>> {
    let scope = p.scope(t, Permission::DevicesView)?;
    ctx.db
        .read(move |r| {
            store::devices::get(r, &scope, device)?;
            store::logins::credentials(r, &scope, device)
        })
        .await
}

/// Who revealed what on a workstation, and when (`audit.view`): the credential history's
/// other half. Entries with the reader's email.
pub async fn reveals(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: DeviceId,
) -> Result<Vec<(crate::model::audit::Entry, Option<String>)>> {
    let scope = p.scope(t, Permission::AuditView)?;
    ctx.db
        .read(move |r| store::audit::sensitive_reads(r, &scope, &device.to_string(), 100))
        .await
}

/// Called in the transaction of a command's acknowledgement: a confirmed password becomes
/// current (a waiting session active); a refused or failed one fails its session.
/// The agent's reason, as a person reads it (without the error kind's prefix).
pub fn reason_of(details: &str) -> String {
    let d = details.trim();
    let d = d.strip_prefix("internal error: ").unwrap_or(d);
    if d.is_empty() {
        "the workstation gave no reason".into()
    } else {
        d.chars().take(500).collect()
    }
}
