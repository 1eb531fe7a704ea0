//! Workstations: enrollment tokens, agent enrollment and authentication, listing, retiring.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::{Permission, Principal, system_scope};
use crate::clock::Timestamp;
use crate::crypto;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::model::audit::{ActorKind, Event};
use crate::model::devices::Device;
use crate::model::devices::EnrollmentToken;
use crate::model::tenants::Tenant;
use crate::proto::{EnrollRequest, EnrollResponse};
use crate::store::{self};

mod auth;
pub use auth::{authenticate, authenticate_key, rotate_secret};

pub const TOKEN_MAX_HOURS: u32 = 24;
/// A device counts as online when it polled within this window (the poll is held ≤ 25 s).
pub const ONLINE_MS: i64 = 90_000;

pub struct NewToken {
    pub hours: u32,
    pub uses: u32,
}

/// A new enrollment token (shown once) and the exact command line for a workstation.
pub async fn create_token(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    n: NewToken,
    base_url: &str,
    origin: &Origin,
) -> Result<(EnrollmentToken, String, EnrollCommands)> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesManage)?;
    if !(1..=TOKEN_MAX_HOURS).contains(&n.hours) {
        return Err(Error::validation(
            "hours",
            format!("must be between 1 and {TOKEN_MAX_HOURS}"),
        ));
    }
    if !(1..=100_000).contains(&n.uses) {
        return Err(Error::validation("uses", "must be between 1 and 100000"));
    }
    let secret = format!("hge_{}", crypto::random_token(24)?);
    let tok = EnrollmentToken {
        id: format!("enr-{}", uuid::Uuid::now_v7().simple()),
        tenant_id: t.id,
        uses_left: i64::from(n.uses),
        expires_at: now.plus_secs(i64::from(n.hours) * 3600),
        revoked_at: None,
        created_at: now,
    };
    let (p2, o, t2, h) = (
        p.clone(),
        origin.clone(),
        tok.clone(),
        crypto::sha256(secret.as_bytes()),
    );
    ctx.db
        .write(move |tx| {
            store::devices::insert_token(tx, &scope, &t2, &h, Some(p2.user_id.to_string()))?;
            Audit::new(Event::EnrollmentTokenCreated, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("enrollment_token", &t2.id)
                .details(json!({"uses": t2.uses_left, "expires_at": t2.expires_at.rfc3339()}))
                .append(tx)?;
            Ok(())
        })
        .await?;
    let fingerprint = ctx
        .certs
        .current_id()
        .and_then(|_| crate::service::certificates::active(&ctx.db).ok().flatten())
        .map(|c| c.fingerprint)
        .unwrap_or_default();
    let command = EnrollCommands::new(base_url, &secret, &fingerprint);
    Ok((tok, secret, command))
}

/// How a workstation enrolls: as root on Linux, with the MSI on Windows (an RMM runs it).
#[derive(Clone, Debug)]
pub struct EnrollCommands {
    pub linux: String,
    pub windows: String,
}

impl EnrollCommands {
    pub fn new(base_url: &str, secret: &str, fingerprint: &str) -> Self {
        EnrollCommands {
            linux: format!(
                "hourglass agent enroll --server {base_url} --token {secret} --fingerprint {fingerprint}"
            ),
            windows: format!(
                "msiexec /i hourglass-agent.msi /qn SERVER={base_url} TOKEN={secret} FINGERPRINT={fingerprint}"
            ),
        }
    }
}

/// From the appliance's console (`hourglass admin enrollment-token`): no principal, audited
/// as the system.
pub fn create_token_for_slug(
    ctx: &Ctx,
    slug: &str,
    n: NewToken,
    base_url: &str,
) -> Result<(String, String)> {
    let now = ctx.clock.now();
    if !(1..=TOKEN_MAX_HOURS).contains(&n.hours) || !(1..=100_000).contains(&n.uses) {
        return Err(Error::validation(
            "hours",
            format!("hours must be 1–{TOKEN_MAX_HOURS} and uses 1–100000"),
        ));
    }
    let secret = format!("hge_{}", crypto::random_token(24)?);
    let slug = slug.to_string();
    let h = crypto::sha256(secret.as_bytes());
    let fingerprint = ctx.db.write_blocking(|tx| {
        let t = store::tenants::by_slug(&tx.reader(), &slug)?
            .ok_or_else(|| Error::validation("tenant", format!("no tenant {slug:?}")))?;
        let scope = system_scope(t.id);
        let tok = EnrollmentToken {
            id: format!("enr-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: t.id,
            uses_left: i64::from(n.uses),
            expires_at: now.plus_secs(i64::from(n.hours) * 3600),
            revoked_at: None,
            created_at: now,
        };
        store::devices::insert_token(tx, &scope, &tok, &h, None)?;
        Audit::new(Event::EnrollmentTokenCreated, now)
            .tenant(t.id)
            .target("enrollment_token", &tok.id)
            .details(json!({"uses": tok.uses_left, "via": "cli"}))
            .append(tx)?;
        Ok(store::certificates::active(&tx.reader())?
            .map(|c| c.fingerprint)
            .unwrap_or_default())
    })?;
    let command = format!(
        "hourglass agent enroll --server {base_url} --token {secret} --fingerprint {fingerprint}"
    );
    Ok((secret, command))
}

pub async fn tokens(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<EnrollmentToken>> {
    let scope = p.scope(t, Permission::DevicesManage)?;
    ctx.db
        .read(move |r| store::devices::list_tokens(r, &scope))
        .await
}

pub async fn revoke_token(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesManage)?;
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::devices::revoke_token(tx, &scope, &id, now)?;
            Audit::new(Event::EnrollmentTokenRevoked, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("enrollment_token", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}

fn text_field(field: &str, v: &str, max: usize) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            format!("must be 1–{max} printable characters"),
        ));
    }
    Ok(v.to_string())
}

/// An agent trades an enrollment token for a device id and a 256-bit device secret; the
/// server keeps only the secret's hash (AGT-01, AGT-02).
pub async fn enroll(ctx: &Ctx, req: EnrollRequest, origin: &Origin) -> Result<EnrollResponse> {
    let now = ctx.clock.now();
    let hostname = text_field("hostname", &req.hostname, 253)?;
    let os = text_field("os", &req.os, 64)?;
    let os_version = text_field("os_version", &req.os_version, 128)?;
    let agent_version = text_field("agent_version", &req.agent_version, 64)?;
    let secret = crypto::random_token(32)?;
    let secret_hash = crypto::sha256(secret.as_bytes());
    let token_hash = crypto::sha256(req.token.trim().as_bytes());
    let (o, ctx2) = (origin.clone(), ctx.clone());
    let outcome = ctx
        .db
        .write(move |tx| {
            let Some(t) =
                store::devices::spend_token(tx, &token_hash, now)?.filter(|t| t.uses_left > 0)
            else {
                Audit::new(Event::DeviceEnrollFail, now)
                    .failure()
                    .actor(ActorKind::Anonymous, None)
                    .from(&o)
                    .details(json!({"hostname": hostname}))
                    .append(tx)?;
                return Ok(None);
            };
            let scope = system_scope(t.tenant_id);
            let id = DeviceId::new();
            let d = store::devices::NewDevice {
                id,
                hostname: &hostname,
                os: &os,
                os_version: &os_version,
                agent_version: &agent_version,
            };
            store::devices::insert(tx, &scope, &d, &secret_hash, now)?;
            Audit::new(Event::DeviceEnrolled, now)
                .tenant(t.tenant_id)
                .actor(ActorKind::Device, Some(id.to_string()))
                .from(&o)
                .device(id)
                .target("enrollment_token", &t.id)
                .details(json!({"hostname": hostname, "os": os}))
                .append(tx)?;
            super::logins::on_enroll(tx, &ctx2, &scope, id, now)?;
            super::policies::on_enroll(tx, &ctx2, &scope, id, now)?;
            super::standing_admins::on_enroll(tx, &ctx2, &scope, id, now)?;
            let slug = store::tenants::by_id(&tx.reader(), t.tenant_id)?
                .map(|t| t.slug.to_string())
                .unwrap_or_default();
            Ok(Some((id, slug)))
        })
        .await?;
    let (device_id, tenant) = outcome.ok_or(Error::Unauthenticated)?;
    Ok(EnrollResponse {
        device_id,
        device_secret: secret,
        tenant,
        server_time: now.millis(),
    })
}

pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<Device>> {
    let scope = p.scope(t, Permission::DevicesView)?;
    let mut ds = ctx
        .db
        .read(move |r| store::devices::list(r, &scope))
        .await?;
    for d in &mut ds {
        merge_heartbeat(ctx, d);
    }
    Ok(ds)
}

pub async fn get(ctx: &Ctx, p: &Principal, t: &Tenant, id: DeviceId) -> Result<Device> {
    let scope = p.scope(t, Permission::DevicesView)?;
    let mut d = ctx
        .db
        .read(move |r| store::devices::get(r, &scope, id))
        .await?;
    merge_heartbeat(ctx, &mut d);
    Ok(d)
}

/// The freshest last-seen, including heartbeats not yet flushed.
fn merge_heartbeat(ctx: &Ctx, d: &mut Device) {
    if let Some(at) = ctx.beats.last_seen(d.id) {
        d.last_seen_at = d.last_seen_at.max(at);
    }
}

/// A device with its recent commands and events (the device page).
pub async fn detail(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: DeviceId,
) -> Result<(
    Device,
    Vec<store::commands::StoredCommand>,
    Vec<store::commands::StoredEvent>,
)> {
    let d = get(ctx, p, t, id).await?;
    let scope = p.scope(t, Permission::DevicesView)?;
    let (commands, events) = ctx
        .db
        .read(move |r| {
            Ok((
                store::commands::recent(r, &scope, id, 50)?,
                store::commands::recent_events(r, &scope, id, 50)?,
            ))
        })
        .await?;
    Ok((d, commands, events))
}

/// Online: holding a long-poll now, or seen within the last 90 seconds (the heartbeat not
/// yet written counts).
pub fn is_online(ctx: &Ctx, d: &Device, now: Timestamp) -> bool {
    let seen = ctx
        .beats
        .last_seen(d.id)
        .unwrap_or(d.last_seen_at)
        .max(d.last_seen_at);
    d.active && (ctx.wake.is_connected(d.id) || now.millis() - seen.millis() < ONLINE_MS)
}

/// How many of these devices are offline now (orders for them wait until they are back).
pub async fn offline_among(ctx: &Ctx, ids: &[DeviceId]) -> Result<usize> {
    let ids: std::collections::BTreeSet<DeviceId> = ids.iter().copied().collect();
    let now = ctx.clock.now();
    let devices = ctx
        .db
        .read(move |r| {
            ids.iter()
                .filter_map(|id| store::devices::by_id(r, *id).transpose())
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    Ok(devices.iter().filter(|d| !is_online(ctx, d, now)).count())
}

pub async fn retire(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: DeviceId,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesManage)?;
    let (p2, o) = (p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            store::devices::retire(tx, &scope, id, now)?;
            Audit::new(Event::DeviceRetired, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .device(id)
                .target("device", id)
                .append(tx)?;
            Ok(())
        })
        .await?;
    ctx.wake.wake(id);
    Ok(())
}

/// Heartbeats written per transaction: 100,000 polling devices leave tens of thousands per
/// flush, and one transaction for all of them kept approvals and decisions waiting for the
/// writer for over a second (BENCHMARKS.md); a chunk this size takes milliseconds.
const HEARTBEATS_PER_TX: usize = 1_000;

/// Job: writes the buffered heartbeats, a chunk per transaction so other writes get between.
pub async fn flush_heartbeats(ctx: &Ctx) -> Result<u64> {
    let mut beats = ctx.beats.drain();
    let mut n = 0;
    while !beats.is_empty() {
        let rest = beats.split_off(beats.len().min(HEARTBEATS_PER_TX));
        let (chunk, ctx2) = (std::mem::replace(&mut beats, rest), ctx.clone());
        n += ctx
            .db
            .write(move |tx| {
                let now = ctx2.clock.now();
                for (id, beat) in &chunk {
                    super::tamper::on_heartbeat(tx, &ctx2, (*id, beat), now)?;
                }
                store::devices::record_heartbeats(tx, &chunk)
            })
            .await?;
    }
    Ok(n as u64)
}
