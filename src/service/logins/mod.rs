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
use crate::ids::{DeviceId, LoginId, TenantId, UserId};
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::Action;
use crate::model::logins::{
    self as rules, Credential, CredentialReason, CredentialState, Login, State,
};
use crate::model::tenants::{LoginMode, Tenant};
use crate::store::{self, WriteTx, logins::OfflineSecret};

mod end;
mod erase;
mod offline;
mod start;

pub use end::*;
pub use erase::*;
pub use offline::*;
pub use start::*;

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

/// The person a managed workstation account belongs to (msp-nik → the MSP's nik, co-ann →
/// this tenant's co-ann), if any.
pub(crate) fn owner_of(
    r: &store::Reader<'_>,
    tenant: TenantId,
    account: &str,
) -> Result<Option<crate::model::users::User>> {
    if !crate::model::commands::is_managed_account(account) {
        return Ok(None);
    }
    match (account.strip_prefix("msp-"), store::tenants::msp(r)?) {
        (Some(u), Some(m)) => store::users::by_username(r, &system_scope(m.id), u),
        _ => store::users::by_username(r, &system_scope(tenant), account),
    }
}

/// An agent event's data for the chain: a person's account (`"account": "msp-nik"`) becomes
/// their id (`"account_of": …`), joined back in when shown; other accounts stay as named.
pub(crate) fn for_the_chain(
    r: &store::Reader<'_>,
    tenant: TenantId,
    data: &serde_json::Value,
) -> Result<serde_json::Value> {
    let mut data = data.clone();
    let owner = match data["account"].as_str() {
        Some(a) => owner_of(r, tenant, a)?,
        None => None,
    };
    if let (Some(u), Some(map)) = (owner, data.as_object_mut()) {
        map.remove("account");
        map.insert("account_of".into(), json!(u.id));
    }
    Ok(data)
}

/// An entry about a workstation account: a person's account is named by the person's id, so
/// the chain never holds a name their erasure replaces (DESIGN §6); any other by its name.
fn about_account(
    a: Audit,
    r: &store::Reader<'_>,
    tenant: TenantId,
    account: &str,
) -> Result<Audit> {
    Ok(match owner_of(r, tenant, account)? {
        Some(u) => a.target("user", u.id),
        None => a.target("account", account),
    })
}

/// The webhooks' notice of a login event (`login.started`, …), in its transaction.
fn tell_hooks(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    l: &Login,
    event: &str,
    what: &str,
    now: Timestamp,
) -> Result<()> {
    let n = crate::service::webhooks::LoginNotice {
        event,
        id: l.id.to_string(),
        account: &l.account,
        hostname: &l.hostname,
        ticket: l.ticket.clone(),
        minutes: l.minutes,
        summary: format!("{what}: {} on {}", l.account, l.hostname),
    };
    crate::service::webhooks::announce_login(tx, ctx, scope, n, now)
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
    reason: CredentialReason,
    action: impl FnOnce(String, Option<String>) -> Action,
    now: Timestamp,
) -> Result<Zeroizing<String>> {
    // A login order lives as long as the session (a workstation back after it must not
    // enable the account); a rotation waits for the workstation as long as it takes.
    let ttl_ms = match l.login {
        Some(s) if reason == CredentialReason::Login => s.expires_at.millis() - now.millis(),
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
        reason,
        state: CredentialState::Pending,
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

/// Audited and committed even though the action fails (CRY-02).
fn decrypt_failed(tx: &WriteTx<'_>, l: &Login, what: &str, now: Timestamp) -> Result<()> {
    audit_for(Event::CryptDecryptFail, l, now)
        .failure()
        .details(json!({"what": what}))
        .append(tx)?;
    Ok(())
}
