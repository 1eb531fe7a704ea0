//! Ending logins: by hand, on expiry, after a restore, or when a workstation reports a stale or unexpected state; each ends with a rotation and the account disabled (CRED-03, CRED-05).

use super::*;

/// Closes an open session: the password is rotated (never shown), rights removed, the account
/// disabled and logged off (CRED-03).
pub(super) fn close_in(
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
pub(in crate::service) fn end_after_restore(
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
        .details(json!({"why": "restored from a backup"}))
        .append(tx)?;
    tell_hooks(
        tx,
        ctx,
        &scope,
        l,
        "login.revoked",
        "Technician login revoked (restore)",
        now,
    )?;
    Ok(true)
}

/// Rights removed, a new password escrowed and set (never shown), the account disabled and
/// logged off.
pub(super) fn lock_down(
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
        CredentialReason::Rotation,
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
        let a = Audit::new(Event::LoginOutsideSession, now)
            .tenant(tenant)
            .device(device)
            .failure()
            .details(
                json!({"line": data["line"], "host": data["host"], "rotate_at": due.rfc3339()}),
            );
        about_account(a, &tx.reader(), tenant, account)?.append(tx)?;
    }
    Ok(())
}

/// The reported versions the escrow has moved past, with no newer one on its way.
pub(super) fn stale(
    r: &store::Reader<'_>,
    device: DeviceId,
    reported: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String, String)>> {
    Ok(stale_in(&store::logins::versions(r, device)?, reported))
}

fn stale_in(
    versions: &[(String, Option<String>, bool)],
    reported: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    versions
        .iter()
        .filter_map(|(account, current, pending)| {
            let seen = reported.get(account)?;
            let current = current.as_ref()?;
            (!pending && seen != current).then(|| (account.clone(), seen.clone(), current.clone()))
        })
        .collect()
}

/// A device's password versions, from memory unless a credential changed since last read.
async fn versions_of(ctx: &Ctx, device: DeviceId) -> Result<store::hot::Versions> {
    let hot = ctx.db.hot();
    if let Some(v) = hot.versions(device) {
        return Ok(v);
    }
    let generation = hot.generation();
    let v = std::sync::Arc::new(
        ctx.db
            .read(move |r| store::logins::versions(r, device))
            .await?,
    );
    hot.remember_versions(device, v.clone(), generation);
    Ok(v)
}

/// CRED-05 (LAPS's image-rollback check), at each poll: an agent reporting a password
/// version the appliance has moved past runs on a rolled-back machine or state. The password
/// is rotated at once — and outside a session the account is also disabled — and audited.
pub async fn check_versions(
    ctx: &Ctx,
    d: &crate::model::devices::DeviceKey,
    reported: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let now = ctx.clock.now();
    if reported.is_empty() || reported.len() > 100 {
        return Ok(());
    }
    let device = d.id;
    if stale_in(&versions_of(ctx, device).await?, reported).is_empty() {
        return Ok(());
    }
    let (ctx2, tenant, reported) = (ctx.clone(), d.tenant_id, reported.clone());
    ctx.db
        .write(move |tx| {
            let scope = system_scope(tenant);
            for (account, seen, current) in stale(&tx.reader(), device, &reported)? {
                let e = Escrow {
                    device,
                    account: &account,
                    login: None,
                };
                if store::logins::is_open(&tx.reader(), device, &account)? {
                    escrow_and_order(
                        tx,
                        &ctx2,
                        &scope,
                        e,
                        CredentialReason::Rotation,
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
                let a = Audit::new(Event::CredentialRollback, now)
                    .tenant(tenant)
                    .device(device)
                    .failure()
                    .details(json!({"reported_version": seen, "current_version": current}));
                about_account(a, &tx.reader(), tenant, &account)?.append(tx)?;
            }
            Ok(())
        })
        .await
}

/// After a restore (DUR-04): every escrowed password is replaced, since the restored copy
/// may hold passwords that were since rotated away, or a copy of it may have leaked.
pub(in crate::service) fn rotate_all_escrowed(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    now: Timestamp,
) -> Result<u64> {
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
            CredentialReason::Rotation,
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
pub(super) async fn settle_strays(ctx: &Ctx, now: Timestamp) -> Result<u64> {
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
                    let a = Audit::new(Event::StrayRotated, now)
                        .tenant(s.tenant_id)
                        .device(s.device_id)
                        .details(json!({"seen_at": s.seen_at.rfc3339()}));
                    about_account(a, &tx.reader(), s.tenant_id, &s.account)?.append(tx)?;
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
            let (to, e) = if own {
                (State::Ended, Event::LoginEnded)
            } else {
                (State::Revoked, Event::LoginRevoked)
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
                .details(json!({"shared": shared}))
                .append(tx)?;
            let (event, said) = if own {
                ("login.ended", "Technician login ended")
            } else {
                ("login.revoked", "Technician login revoked")
            };
            tell_hooks(tx, &ctx2, &scope, &l, event, said, now)?;
            store::logins::get(&tx.reader(), &scope, id)
        })
        .await?;
    ctx.wake.wake(l.device_id);
    crate::service::webhooks::kick(ctx);
    Ok(l)
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
            let a = Audit::new(Event::CredentialsPurged, now)
                .tenant(cred.tenant_id)
                .device(cred.device_id)
                .details(json!({"purged": purged, "kept": rules::HISTORY}));
            about_account(a, &tx.reader(), cred.tenant_id, &cred.account)?.append(tx)?;
        }
        if let Some(l) =
            login.filter(|l| cred.reason == CredentialReason::Login && l.state == State::Waiting)
            && store::logins::transition(tx, &scope, &l, State::Active, None, now)?
        {
            audit_for(Event::LoginActive, &l, now)
                .actor(ActorKind::User, Some(l.user_id.to_string()))
                .details(json!({"shared": shared}))
                .append(tx)?;
        }
    } else {
        store::logins::fail_credential(tx, &cred.id)?;
        if let Some(l) =
            login.filter(|l| cred.reason == CredentialReason::Login && l.state.is_open())
            && store::logins::transition(tx, &scope, &l, State::Failed, None, now)?
        {
            store::logins::set_failure(tx, &scope, l.id, &reason_of(details))?;
            audit_for(Event::LoginFailed, &l, now)
                .failure()
                .details(json!({"shared": shared, "reason": reason_of(details)}))
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
                        .details(json!({"shared": shared}))
                        .append(tx)?;
                    tell_hooks(
                        tx,
                        &ctx2,
                        &scope,
                        &l,
                        "login.expired",
                        "Technician login over",
                        now,
                    )?;
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

/// What an offboarding ended, for the audit entry and the portal.
#[derive(Debug, Default)]
pub struct Offboarded {
    pub logins_ended: usize,
    pub offline_secrets_replaced: usize,
    pub woken: Vec<DeviceId>,
}

/// Inside the transaction that changed what `user` may do (disabled, erased, a role removed,
/// unassigned from a tenant): in every tenant where they may no longer log in to
/// workstations, each login they hold is revoked (password rotated, rights removed, the
/// account disabled and logged off on the workstation) and each offline secret they have
/// been shown is replaced — the workstation's own in named mode, the tenant's shared one in
/// shared mode.
pub(in crate::service) fn offboard(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    user: UserId,
    why: &str,
    now: Timestamp,
) -> Result<Offboarded> {
    let after = crate::service::auth::principal(&tx.reader(), user, None, None)?;
    let r = tx.reader();
    let still = |tenant: TenantId| -> Result<bool> {
        let (Some(p), Some(t)) = (&after, store::tenants::by_id(&r, tenant)?) else {
            return Ok(false);
        };
        Ok(p.permissions_in(&t)
            .is_some_and(|set| set.contains(Permission::DevicesLogin)))
    };
    let mut out = Offboarded::default();
    for l in store::logins::open_of(&tx.reader(), user)? {
        if still(l.tenant_id)? {
            continue;
        }
        let scope = system_scope(l.tenant_id);
        if close_in(tx, ctx, &scope, &l, State::Revoked, Some(why), now)? {
            audit_for(Event::LoginRevoked, &l, now)
                .details(json!({"why": why}))
                .append(tx)?;
            tell_hooks(
                tx,
                ctx,
                &scope,
                &l,
                "login.revoked",
                "Technician login revoked (offboarding)",
                now,
            )?;
            out.logins_ended += 1;
            out.woken.push(l.device_id);
        }
    }
    let mut shared_done = Vec::new();
    for (tenant, device) in store::audit::offline_codes_seen(&tx.reader(), user)? {
        if still(tenant)? {
            continue;
        }
        let scope = system_scope(tenant);
        if shared_mode(tx, &scope)? {
            if !shared_done.contains(&tenant) {
                shared_done.push(tenant);
                out.woken
                    .extend(rotate_tenant_secret(tx, ctx, tenant, why, now)?);
                out.offline_secrets_replaced += 1;
            }
            continue;
        }
        let active = store::devices::get(&tx.reader(), &scope, device).is_ok_and(|d| d.active);
        if !active {
            continue;
        }
        new_secret(tx, ctx, &scope, Some(device), &[device], now)?;
        Audit::new(Event::OfflineSecretRotated, now)
            .tenant(tenant)
            .device(device)
            .details(json!({"why": why}))
            .append(tx)?;
        out.offline_secrets_replaced += 1;
        out.woken.push(device);
    }
    Ok(out)
}
