//! Technician JIT logins (DESIGN §5): start a session on a workstation (fresh password,
//! escrowed sealed before the agent is told: CRED-01), reveal it once (CRED-06), end, revoke
//! or expire it with a rotation and the account disabled (CRED-03), offline codes (MFA-06/07).

use serde_json::json;
use zeroize::Zeroizing;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::commands;
use crate::authz::{Permission, Principal, TenantScope, system_scope};
use crate::clock::Timestamp;
use crate::crypto::{SealContext, totp};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, LoginId, TenantId};
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::Action;
use crate::model::logins::{self as rules, State};
use crate::model::tenants::{LoginMode, Tenant};
use crate::store::{self, WriteTx, logins::Credential, logins::Login, logins::OfflineSecret};

/// How long rotations, revocations and secrets wait for an offline workstation.
const ORDER_TTL_MS: i64 = 7 * 86_400_000;

fn password_ctx<'a>(id: &'a str, tenant: &'a str) -> SealContext<'a> {
    SealContext {
        table: "credentials",
        column: "password_sealed",
        row_id: id,
        tenant_id: tenant,
    }
}

fn secret_ctx<'a>(id: &'a str, tenant: &'a str) -> SealContext<'a> {
    SealContext {
        table: "offline_secrets",
        column: "secret_sealed",
        row_id: id,
        tenant_id: tenant,
    }
}

/// The audit line naming person, workstation and account (DESIGN §5).
fn line(l: &Login, shared: bool, what: &str) -> String {
    let verb = if shared { "accessed" } else { "logged into" };
    match what {
        "" => format!(
            "{} {verb} {} with account {}",
            l.email, l.hostname, l.account
        ),
        w => format!(
            "{} {w} on {} with account {}",
            l.email, l.hostname, l.account
        ),
    }
}

fn audit_for(e: Event, l: &Login, now: Timestamp) -> Audit {
    Audit::new(e, now)
        .tenant(l.tenant_id)
        .device(l.device_id)
        .target("login", l.id)
}

/// Whose password is escrowed: an account on a workstation, for a session or (a log-on seen
/// outside any session) for none.
#[derive(Clone, Copy)]
struct Escrow<'a> {
    device: DeviceId,
    account: &'a str,
    login: Option<&'a Login>,
}

impl<'a> From<&'a Login> for Escrow<'a> {
    fn from(l: &'a Login) -> Self {
        Escrow {
            device: l.device_id,
            account: &l.account,
            login: Some(l),
        }
    }
}

/// Seals a new password for (device, account) as `pending` and queues the command setting it;
/// the escrow row exists before the command does (CRED-01).
fn escrow_and_order(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    l: Escrow<'_>,
    reason: &str,
    action: impl FnOnce(String, Option<String>) -> Action,
    now: Timestamp,
) -> Result<Zeroizing<String>> {
    // A login order lives as long as the session (a workstation back after it must not
    // enable the account); a rotation waits for the workstation as long as it takes.
    let ttl_ms = match l.login {
        Some(s) if reason == "login" => s.expires_at.millis() - now.millis(),
        _ => ORDER_TTL_MS,
    };
    let password = rules::password_from(&*crate::crypto::random_secret()?);
    let id = format!("cred-{}", uuid::Uuid::now_v7().simple());
    let tenant = scope.tenant().to_string();
    let c = Credential {
        password_sealed: Some(
            ctx.crypto
                .seal(&password_ctx(&id, &tenant), password.as_bytes())?,
        ),
        id: id.clone(),
        tenant_id: scope.tenant(),
        device_id: l.device,
        account: l.account.to_string(),
        login_id: l.login.map(|s| s.id),
        command_id: None,
        reason: reason.into(),
        state: "pending".into(),
        created_at: now,
        activated_at: None,
    };
    store::logins::insert_credential(tx, scope, &c)?;
    let cmd = commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        l.device,
        &action(password.to_string(), Some(id.clone())),
        ttl_ms,
        now,
    )?;
    store::logins::set_credential_command(tx, &id, cmd.id)?;
    Ok(password)
}

fn shared_mode(tx: &WriteTx<'_>, scope: &TenantScope) -> Result<bool> {
    Ok(store::tenants::get(&tx.reader(), scope)?
        .settings
        .login_mode
        == LoginMode::Shared)
}

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
            let r = tx.reader();
            let d = store::devices::get(&r, &scope, device)?;
            if !d.active {
                return Err(Error::InvalidState(
                    "this workstation has been retired".into(),
                ));
            }
            let t = store::tenants::get(&r, &scope)?;
            let me = store::users::credentials_by_id(&r, p2.user_id)?
                .ok_or(Error::NotFound)?
                .user;
            let shared = store::logins::shared_account(&r, &scope)?;
            let account = rules::account_for(
                t.settings.login_mode,
                shared.as_deref(),
                p2.tenant_kind,
                me.username.as_str(),
            )?;
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
            let ttl = i64::from(minutes) * 60_000;
            escrow_and_order(
                tx,
                &ctx2,
                &scope,
                (&l).into(),
                "login",
                |password, version| Action::EnsureAccount {
                    account: account.clone(),
                    password,
                    admin: true,
                    version,
                },
                now,
            )?;
            // The agent removes the rights and disables the account at the deadline on its
            // own clock, even if the appliance cannot reach it then.
            commands::enqueue(
                tx,
                &ctx2.crypto,
                &scope,
                device,
                &Action::GrantAdmin {
                    account: account.clone(),
                    expires_at: expires.millis(),
                    session: None,
                },
                ttl,
                now,
            )?;
            if t.settings.login_mode == LoginMode::Named
                && store::logins::current_secret(&tx.reader(), &scope, Some(device))?.is_none()
            {
                new_secret(tx, &ctx2, &scope, Some(device), &[device], now)?;
            }
            audit_for(Event::LoginStarted, &l, now)
                .by(&p2, &o)
                .details(json!({"line": line(&l, t.settings.login_mode == LoginMode::Shared, "started a login session"),
                    "account": l.account, "minutes": minutes, "ticket": l.ticket}))
                .append(tx)?;
            Ok(l)
        })
        .await?;
    ctx.wake.wake(device);
    Ok(l)
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
                .details(json!({"what": "password", "account": l.account, "hostname": l.hostname}))
                .append(tx)?;
            Ok(Ok((l, password)))
        })
        .await?
}

/// Audited and committed even though the action fails (CRY-02).
fn decrypt_failed(tx: &WriteTx<'_>, l: &Login, what: &str, now: Timestamp) -> Result<()> {
    audit_for(Event::CryptDecryptFail, l, now)
        .failure()
        .details(json!({"what": what}))
        .append(tx)?;
    Ok(())
}

/// Closes an open session: the password is rotated (never shown), rights removed, the account
/// disabled and logged off (CRED-03).
fn close_in(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    l: &Login,
    to: State,
    by: Option<&str>,
    now: Timestamp,
) -> Result<bool> {
    if !l.state.is_open() {
        return Err(Error::InvalidState(format!(
            "this session is already {}",
            l.state.label()
        )));
    }
    if !store::logins::transition(tx, scope, l, to, by, now)? {
        return Ok(false);
    }
    lock_down(tx, ctx, scope, l.into(), now)?;
    Ok(true)
}

/// After a restore (DUR-04): a session open in the restored copy may have ended after it was
/// taken. It is ended again — password rotated, account disabled on the workstation — and
/// audited as revoked by the restore. Returns whether it was open.
pub(super) fn end_after_restore(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    l: &Login,
    now: Timestamp,
) -> Result<bool> {
    let scope = system_scope(l.tenant_id);
    if !close_in(tx, ctx, &scope, l, State::Revoked, Some("restore"), now)? {
        return Ok(false);
    }
    audit_for(Event::LoginRevoked, l, now)
        .details(json!({"account": l.account, "why": "restored from a backup"}))
        .append(tx)?;
    Ok(true)
}

/// Rights removed, a new password escrowed and set (never shown), the account disabled and
/// logged off.
fn lock_down(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    e: Escrow<'_>,
    now: Timestamp,
) -> Result<()> {
    let account = e.account.to_string();
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        e.device,
        &Action::RevokeAdmin {
            account: account.clone(),
        },
        ORDER_TTL_MS,
        now,
    )?;
    escrow_and_order(
        tx,
        ctx,
        scope,
        e,
        "rotation",
        |password, version| Action::RotatePassword {
            account: account.clone(),
            password,
            version,
        },
        now,
    )?;
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        e.device,
        &Action::DisableAccount { account },
        ORDER_TTL_MS,
        now,
    )?;
    Ok(())
}

/// In the events transaction: a managed account's log-on the agent saw (CRED-03). Covered
/// by a login session here, or by one the agent knows (an offline login not yet reported),
/// it is only audited; otherwise the account is rotated and disabled after a grace period.
pub fn observed_logon(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    device: DeviceId,
    data: &serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    let account = data["account"].as_str().unwrap_or_default();
    if !crate::model::commands::is_managed_account(account)
        || data["in_session"].as_bool() == Some(true)
        || store::logins::is_open(&tx.reader(), device, account)?
    {
        return Ok(());
    }
    let s = store::logins::Stray {
        id: format!("stray-{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant,
        device_id: device,
        account: account.to_string(),
        seen_at: now,
    };
    let due = now.plus_secs(rules::STRAY_GRACE_SECS);
    if store::logins::insert_stray(tx, &s, due)? {
        Audit::new(Event::LoginOutsideSession, now)
            .tenant(tenant)
            .device(device)
            .target("account", account)
            .failure()
            .details(
                json!({"account": account, "line": data["line"], "host": data["host"],
                "rotate_at": due.rfc3339()}),
            )
            .append(tx)?;
    }
    Ok(())
}

/// The reported versions the escrow has moved past, with no newer one on its way.
fn stale(
    r: &store::Reader<'_>,
    device: DeviceId,
    reported: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String, String)>> {
    Ok(store::logins::versions(r, device)?
        .into_iter()
        .filter_map(|(account, current, pending)| {
            let seen = reported.get(&account)?;
            let current = current?;
            (!pending && *seen != current).then(|| (account, seen.clone(), current))
        })
        .collect())
}

/// CRED-05 (LAPS's image-rollback check), at each poll: an agent reporting a password
/// version the appliance has moved past runs on a rolled-back machine or state. The password
/// is rotated at once — and outside a session the account is also disabled — and audited.
pub async fn check_versions(
    ctx: &Ctx,
    d: &store::devices::Device,
    reported: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let now = ctx.clock.now();
    if reported.is_empty() || reported.len() > 100 {
        return Ok(());
    }
    let (device, r2) = (d.id, reported.clone());
    if ctx
        .db
        .read(move |r| stale(r, device, &r2))
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let (ctx2, tenant, reported) = (ctx.clone(), d.tenant_id, reported.clone());
    ctx.db
        .write(move |tx| {
            let scope = system_scope(tenant);
            for (account, seen, current) in stale(&tx.reader(), device, &reported)? {
                let e = Escrow { device, account: &account, login: None };
                if store::logins::is_open(&tx.reader(), device, &account)? {
                    escrow_and_order(
                        tx,
                        &ctx2,
                        &scope,
                        e,
                        "rotation",
                        |password, version| Action::RotatePassword {
                            account: account.clone(),
                            password,
                            version,
                        },
                        now,
                    )?;
                } else {
                    lock_down(tx, &ctx2, &scope, e, now)?;
                }
                Audit::new(Event::CredentialRollback, now)
                    .tenant(tenant)
                    .device(device)
                    .target("account", &account)
                    .failure()
                    .details(json!({"account": account, "reported_version": seen, "current_version": current}))
                    .append(tx)?;
            }
            Ok(())
        })
        .await
}

/// After a restore (DUR-04): every escrowed password is replaced, since the restored copy
/// may hold passwords that were since rotated away, or a copy of it may have leaked.
pub(super) fn rotate_all_escrowed(tx: &WriteTx<'_>, ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let accounts = store::logins::escrowed_accounts(&tx.reader())?;
    for (tenant, device, account) in &accounts {
        let scope = system_scope(*tenant);
        let e = Escrow {
            device: *device,
            account,
            login: None,
        };
        escrow_and_order(
            tx,
            ctx,
            &scope,
            e,
            "rotation",
            |password, version| Action::RotatePassword {
                account: account.clone(),
                password,
                version,
            },
            now,
        )?;
    }
    Ok(accounts.len() as u64)
}

/// Sweep: stray log-ons past their grace period — rotated and disabled, unless a session
/// has covered the account since.
async fn settle_strays(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let due = ctx
        .db
        .read(move |r| store::logins::due_strays(r, now, 200))
        .await?;
    let mut done = 0;
    for s in due {
        let (ctx2, device, id) = (ctx.clone(), s.device_id, s.id.clone());
        let settled = ctx
            .db
            .write(move |tx| {
                let scope = system_scope(s.tenant_id);
                if store::logins::is_open(&tx.reader(), s.device_id, &s.account)? {
                    store::logins::settle_stray(tx, &s.id, "cleared")?;
                    return Ok(());
                }
                if store::logins::settle_stray(tx, &s.id, "rotated")? {
                    let e = Escrow {
                        device: s.device_id,
                        account: &s.account,
                        login: None,
                    };
                    lock_down(tx, &ctx2, &scope, e, now)?;
                    Audit::new(Event::StrayRotated, now)
                        .tenant(s.tenant_id)
                        .device(s.device_id)
                        .target("account", &s.account)
                        .details(json!({"account": s.account, "seen_at": s.seen_at.rfc3339()}))
                        .append(tx)?;
                }
                Ok(())
            })
            .await;
        match settled {
            Ok(()) => {
                ctx.wake.wake(device);
                done += 1;
            }
            // One that cannot be settled (its workstation was retired meanwhile) is set aside,
            // so it cannot hold up this queue and the rest of the sweep at every run.
            Err(e) => {
                tracing::warn!(stray = %id, error = %e, "cannot lock down after a stray log-on; set aside");
                let id2 = id.clone();
                ctx.db
                    .write(move |tx| store::logins::settle_stray(tx, &id2, "cleared").map(|_| ()))
                    .await?;
            }
        }
    }
    Ok(done)
}

/// Ends a session: one's own (`ended`), or someone else's with `devices.manage` (`revoked`).
pub async fn end(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: LoginId,
    origin: &Origin,
) -> Result<Login> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesLogin)?;
    p.require_fresh_mfa(now)?;
    let may_revoke = p.scope(t, Permission::DevicesManage).is_ok();
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let l = ctx
        .db
        .write(move |tx| {
            let l = store::logins::get(&tx.reader(), &scope, id)?;
            let own = l.user_id == p2.user_id;
            if !own && !may_revoke {
                return Err(Error::Forbidden(
                    "ending someone else's session needs devices.manage".into(),
                ));
            }
            let (to, e, what) = if own {
                (State::Ended, Event::LoginEnded, "ended the login session")
            } else {
                (
                    State::Revoked,
                    Event::LoginRevoked,
                    "had the login session revoked",
                )
            };
            if !close_in(
                tx,
                &ctx2,
                &scope,
                &l,
                to,
                Some(&p2.user_id.to_string()),
                now,
            )? {
                return Err(Error::InvalidState("this session has already ended".into()));
            }
            let shared = shared_mode(tx, &scope)?;
            audit_for(e, &l, now)
                .by(&p2, &o)
                .details(json!({"line": line(&l, shared, what), "account": l.account}))
                .append(tx)?;
            store::logins::get(&tx.reader(), &scope, id)
        })
        .await?;
    ctx.wake.wake(l.device_id);
    Ok(l)
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

pub fn on_ack(
    tx: &WriteTx<'_>,
    c: &store::commands::StoredCommand,
    done: bool,
    details: &str,
    now: Timestamp,
) -> Result<()> {
    let Some(cred) = store::logins::credential_by_command(&tx.reader(), c.id)? else {
        return Ok(());
    };
    let scope = system_scope(cred.tenant_id);
    let login = match cred.login_id {
        Some(id) => Some(store::logins::get(&tx.reader(), &scope, id)?),
        None => None,
    };
    let shared = shared_mode(tx, &scope)?;
    if done {
        let purged = store::logins::activate(tx, &cred, now)?;
        if purged > 0 {
            Audit::new(Event::CredentialsPurged, now)
                .tenant(cred.tenant_id)
                .device(cred.device_id)
                .target("account", &cred.account)
                .details(json!({"purged": purged, "kept": rules::HISTORY}))
                .append(tx)?;
        }
        if let Some(l) = login.filter(|l| cred.reason == "login" && l.state == State::Waiting)
            && store::logins::transition(tx, &scope, &l, State::Active, None, now)?
        {
            audit_for(Event::LoginActive, &l, now)
                .actor(ActorKind::User, Some(l.user_id.to_string()))
                .details(json!({"line": line(&l, shared, ""), "account": l.account}))
                .append(tx)?;
        }
    } else {
        store::logins::fail_credential(tx, &cred.id)?;
        if let Some(l) = login.filter(|l| cred.reason == "login" && l.state.is_open())
            && store::logins::transition(tx, &scope, &l, State::Failed, None, now)?
        {
            store::logins::set_failure(tx, &scope, l.id, &reason_of(details))?;
            audit_for(Event::LoginFailed, &l, now)
                .failure()
                .details(
                    json!({"line": line(&l, shared, "could not log in"), "account": l.account,
                    "reason": reason_of(details)}),
                )
                .append(tx)?;
        }
    }
    Ok(())
}

/// Job: sessions past their deadline expire with a rotation; shared secrets older than 30
/// days are replaced (MFA-07).
pub async fn sweep(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let strays = settle_strays(ctx, now).await?;
    let due = ctx
        .db
        .read(move |r| store::logins::due(r, now, 500))
        .await?;
    let mut done = 0;
    for l in due {
        let (ctx2, device) = (ctx.clone(), l.device_id);
        let res = ctx
            .db
            .write(move |tx| {
                let scope = system_scope(l.tenant_id);
                if close_in(tx, &ctx2, &scope, &l, State::Expired, None, now)? {
                    let shared = shared_mode(tx, &scope)?;
                    audit_for(Event::LoginExpired, &l, now)
                        .details(json!({"line": line(&l, shared, "reached the end of the login session"), "account": l.account}))
                        .append(tx)?;
                }
                Ok(())
            })
            .await;
        match res {
            Ok(()) => {
                ctx.wake.wake(device);
                done += 1;
            }
            Err(e) => tracing::error!(error = %e, "login sweep"),
        }
    }
    let stale = ctx
        .db
        .read(move |r| {
            store::logins::stale_shared_secrets(
                r,
                Timestamp::from_millis(now.millis() - rules::SHARED_SECRET_MAX_AGE_MS),
            )
        })
        .await?;
    for s in stale {
        let ctx2 = ctx.clone();
        let woken = ctx
            .db
            .write(move |tx| rotate_tenant_secret(tx, &ctx2, s.tenant_id, "30 days old", now))
            .await?;
        for d in woken {
            ctx.wake.wake(d);
        }
        done += 1;
    }
    Ok(done + strays)
}

// --- offline codes ---------------------------------------------------------------------------

/// Creates a secret (a workstation's, or the tenant's with `device` None) and sends it to
/// `to`; returns the workstations to wake.
fn new_secret(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: Option<DeviceId>,
    to: &[DeviceId],
    now: Timestamp,
) -> Result<()> {
    let secret = totp::new_secret()?;
    let id = format!("os-{}", uuid::Uuid::now_v7().simple());
    let s = OfflineSecret {
        secret_sealed: ctx
            .crypto
            .seal(&secret_ctx(&id, &scope.tenant().to_string()), &secret)?,
        id,
        tenant_id: scope.tenant(),
        device_id: device,
        created_at: now,
    };
    store::logins::put_secret(tx, scope, &s)?;
    let b32 = totp::base32(&secret);
    for d in to {
        send_secret(tx, ctx, scope, *d, b32.clone(), now)?;
    }
    Ok(())
}

fn send_secret(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    secret: String,
    now: Timestamp,
) -> Result<()> {
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        device,
        &Action::SetOfflineSecret {
            secret,
            // Read in the transaction: a settings change resends with the new length.
            minutes: Some(
                store::tenants::get(&tx.reader(), scope)?
                    .settings
                    .offline_login_minutes,
            ),
        },
        ORDER_TTL_MS,
        now,
    )?;
    Ok(())
}

fn active_devices(tx: &WriteTx<'_>, scope: &TenantScope) -> Result<Vec<DeviceId>> {
    Ok(store::devices::list(&tx.reader(), scope)?
        .into_iter()
        .filter(|d| d.active)
        .map(|d| d.id)
        .collect())
}

/// Replaces the tenant's shared secret on all its workstations; returns them.
fn rotate_tenant_secret(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    tenant: TenantId,
    why: &str,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let scope = system_scope(tenant);
    let devices = active_devices(tx, &scope)?;
    new_secret(tx, ctx, &scope, None, &devices, now)?;
    Audit::new(Event::OfflineSecretRotated, now)
        .tenant(tenant)
        .target("tenant", tenant)
        .details(json!({"scope": "tenant", "why": why, "workstations": devices.len()}))
        .append(tx)?;
    Ok(devices)
}

/// In the transaction of a tenant's settings change: shared mode gets its account
/// (`msp-NNNN`, unique) and secret on every workstation; named mode gives each workstation
/// its own secret back (or clears the shared one). Returns the workstations to wake.
pub fn mode_changed(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    mode: LoginMode,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let devices = active_devices(tx, scope)?;
    match mode {
        LoginMode::Shared => {
            if store::logins::shared_account(&tx.reader(), scope)?.is_none() {
                let mut claimed = None;
                for _ in 0..50 {
                    let a = rules::shared_account_candidate(*crate::crypto::random_secret()?);
                    if store::logins::claim_shared_account(tx, scope, &a, now)? {
                        claimed = Some(a);
                        break;
                    }
                }
                let a = claimed.ok_or_else(|| {
                    Error::Conflict("no free shared account name; try again".into())
                })?;
                Audit::new(Event::SharedModeEnabled, now)
                    .tenant(scope.tenant())
                    .target("tenant", scope.tenant())
                    .details(json!({"account": a}))
                    .append(tx)?;
            }
            match store::logins::current_secret(&tx.reader(), scope, None)? {
                Some(s) => {
                    let plain = ctx.crypto.open(
                        &secret_ctx(&s.id, &scope.tenant().to_string()),
                        &s.secret_sealed,
                    )?;
                    for d in &devices {
                        send_secret(tx, ctx, scope, *d, totp::base32(&plain), now)?;
                    }
                }
                None => new_secret(tx, ctx, scope, None, &devices, now)?,
            }
        }
        LoginMode::Named => {
            for d in &devices {
                let own = match store::logins::current_secret(&tx.reader(), scope, Some(*d))? {
                    Some(s) => totp::base32(&ctx.crypto.open(
                        &secret_ctx(&s.id, &scope.tenant().to_string()),
                        &s.secret_sealed,
                    )?),
                    None => String::new(),
                };
                send_secret(tx, ctx, scope, *d, own, now)?;
            }
        }
    }
    Ok(devices)
}

/// In the enrollment transaction: a workstation joining a shared-mode tenant gets its secret.
pub fn on_enroll(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    now: Timestamp,
) -> Result<()> {
    if !shared_mode(tx, scope)? {
        return Ok(());
    }
    if let Some(s) = store::logins::current_secret(&tx.reader(), scope, None)? {
        let plain = ctx.crypto.open(
            &secret_ctx(&s.id, &scope.tenant().to_string()),
            &s.secret_sealed,
        )?;
        send_secret(tx, ctx, scope, device, totp::base32(&plain), now)?;
    }
    Ok(())
}

/// What the portal shows for a workstation's offline code.
pub struct OfflineCode {
    pub account: String,
    pub code: String,
    pub seconds_left: u64,
    pub otpauth: String,
}

/// The current offline code of a workstation (`devices.login`, every view audited). Named
/// mode: only after the person's first online login there; shared mode: at once.
pub async fn offline_code(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    device: DeviceId,
    origin: &Origin,
) -> Result<OfflineCode> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesLogin)?;
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            let r = tx.reader();
            let d = store::devices::get(&r, &scope, device)?;
            let t = store::tenants::get(&r, &scope)?;
            let shared = t.settings.login_mode == LoginMode::Shared;
            if !shared && !store::logins::has_logged_in(&r, device, p2.user_id)? {
                return Ok(Err(Error::Forbidden(
                    "the offline code of this workstation is shown after your first online login to it".into(),
                )));
            }
            let me = store::users::credentials_by_id(&r, p2.user_id)?
                .ok_or(Error::NotFound)?
                .user;
            let account = rules::account_for(
                t.settings.login_mode,
                store::logins::shared_account(&r, &scope)?.as_deref(),
                p2.tenant_kind,
                me.username.as_str(),
            )?;
            let s = store::logins::current_secret(&r, &scope, (!shared).then_some(device))?
                .ok_or_else(|| Error::InvalidState("this workstation has no offline secret yet".into()))?;
            let Ok(plain) = ctx2
                .crypto
                .open(&secret_ctx(&s.id, &scope.tenant().to_string()), &s.secret_sealed)
            else {
                Audit::new(Event::CryptDecryptFail, now)
                    .tenant(scope.tenant())
                    .device(device)
                    .failure()
                    .details(json!({"what": "offline_secrets.secret_sealed"}))
                    .append(tx)?;
                return Ok(Err(Error::internal("cannot open an offline secret")));
            };
            Audit::new(Event::SensitiveRead, now)
                .tenant(scope.tenant())
                .device(device)
                .by(&p2, &o)
                .target("device", device)
                .details(json!({"what": "offline_code", "hostname": d.hostname, "account": account}))
                .append(tx)?;
            let secs = u64::try_from(now.seconds()).unwrap_or(0);
            Ok(Ok(OfflineCode {
                code: totp::code_at(&plain, now)?,
                seconds_left: totp::STEP_SECS - secs % totp::STEP_SECS,
                otpauth: totp::otpauth_url(&plain, &format!("Hourglass {}", d.hostname), &account)?,
                account,
            }))
        })
        .await?
}

/// In the transaction storing an uploaded `offline_login` event: the audit line, and the
/// used secret replaced (the tenant's on all workstations in shared mode). Returns the
/// workstations to wake.
pub fn offline_used(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    tenant: TenantId,
    device: DeviceId,
    data: &serde_json::Value,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let scope = system_scope(tenant);
    let r = tx.reader();
    let d = store::devices::get(&r, &scope, device)?;
    let account = data["account"].as_str().unwrap_or("").to_string();
    let step = data["step"].as_u64().unwrap_or(0);
    let code_time = Timestamp::from_millis((step * totp::STEP_SECS * 1000) as i64).rfc3339();
    let shared = shared_mode(tx, &scope)?;
    // Named mode: the account names its person (msp-nik → the MSP's nik, co-ann → this
    // tenant's co-ann). A shared code names nobody.
    let person = match (
        shared,
        account.strip_prefix("msp-"),
        store::tenants::msp(&r)?,
    ) {
        (true, _, _) => None,
        (false, Some(u), Some(m)) => store::users::by_username(&r, &system_scope(m.id), u)?,
        (false, _, _) => store::users::by_username(&r, &scope, &account)?,
    };
    let who = person
        .as_ref()
        .map(|u| u.email.clone())
        .unwrap_or_else(|| "someone with the offline code".into());
    Audit::new(Event::OfflineLogin, now)
        .tenant(tenant)
        .device(device)
        .actor(ActorKind::Device, Some(device.to_string()))
        .target("account", &account)
        .details(json!({"line": format!("{who} logged into {} offline with account {account} (code of {code_time})", d.hostname),
            "account": account, "step": step, "code_time": code_time, "user": person.as_ref().map(|u| u.id)}))
        .append(tx)?;
    if shared {
        rotate_tenant_secret(tx, ctx, tenant, "used offline", now)
    } else {
        new_secret(tx, ctx, &scope, Some(device), &[device], now)?;
        Audit::new(Event::OfflineSecretRotated, now)
            .tenant(tenant)
            .device(device)
            .target("device", device)
            .details(json!({"scope": "workstation", "why": "used offline"}))
            .append(tx)?;
        Ok(vec![device])
    }
}
