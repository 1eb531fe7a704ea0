//! Offline codes (MFA-06/07): the per-device or shared secret, its rotation when the login mode changes, and the agent reporting a code used.

use super::*;

/// Creates a secret (a workstation's, or the tenant's with `device` None) and sends it to
/// `to`; returns the workstations to wake.
pub(super) fn new_secret(
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

pub(super) fn send_secret(
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

pub(super) fn active_devices(tx: &WriteTx<'_>, scope: &TenantScope) -> Result<Vec<DeviceId>> {
    Ok(store::devices::list(&tx.reader(), scope)?
        .into_iter()
        .filter(|d| d.active)
        .map(|d| d.id)
        .collect())
}

/// Replaces the tenant's shared secret on all its workstations; returns them.
pub(super) fn rotate_tenant_secret(
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
                // The shared account's random name belongs to nobody; a named one is the reader's own.
                .details(json!({"what": "offline_code", "account": shared.then_some(&account)}))
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
    let via = data["via"].as_str().unwrap_or("command");
    let code_time = Timestamp::from_millis((step * totp::STEP_SECS * 1000) as i64).rfc3339();
    let shared = shared_mode(tx, &scope)?;
    // Named mode: the account names its person (msp-nik → the MSP's nik, co-ann → this
    // tenant's co-ann). A shared code names nobody.
    let person = match shared {
        true => None,
        false => owner_of(&r, tenant, &account)?,
    };
    // A person's account is named by the person's id (its name derives from their username,
    // which erasure replaces); a shared account's random name belongs to nobody.
    let a = Audit::new(Event::OfflineLogin, now)
        .tenant(tenant)
        .device(device)
        .actor(ActorKind::Device, Some(device.to_string()));
    let a = match &person {
        Some(u) => a
            .target("user", u.id)
            .details(json!({"step": step, "code_time": code_time, "via": via})),
        None => a
            .target("account", &account)
            .details(json!({"account": account, "step": step, "code_time": code_time, "via": via})),
    };
    a.append(tx)?;
    let n = crate::service::webhooks::LoginNotice {
        event: "login.offline",
        id: format!("offline-{}-{step}", device),
        account: &account,
        hostname: &d.hostname,
        ticket: None,
        minutes: 0,
        summary: format!(
            "Offline login with the offline code: {account} on {}",
            d.hostname
        ),
    };
    crate::service::webhooks::announce_login(tx, ctx, &scope, n, now)?;
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
