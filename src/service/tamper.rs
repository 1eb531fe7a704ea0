//! Tamper evidence (DESIGN §2): a workstation holding open admin rights or a technician login
//! that stops checking in for longer than its tenant allows, or whose agent reports another
//! version, raises an alert — an audit entry, a webhook event, a badge on the device — in the
//! transaction that notices it. A local administrator can still stop the agent; this is what
//! the appliance then sees.

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::{Permission, Principal};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::model::audit::{ActorKind, Event};
use crate::model::devices::{Alert, Heartbeat};
use crate::model::tenants::Tenant;
use crate::store::{self, WriteTx};

/// Job: devices that went silent while holding rights get their alert; returns how many.
pub async fn watch(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let ctx2 = ctx.clone();
    ctx.db
        .write(move |tx| {
            let silent = store::devices::silent_holding(&tx.reader(), now)?;
            for d in &silent {
                store::devices::set_alert(tx, d.id, Some(Alert::Silent), now)?;
                let minutes = (now.millis() - d.last_seen_at.millis()) / 60_000;
                Audit::new(Event::DeviceSilent, now)
                    .tenant(d.tenant_id)
                    .device(d.id)
                    .target("device", d.id)
                    .failure()
                    .details(json!({"last_seen_at": d.last_seen_at.rfc3339(), "silent_minutes": minutes}))
                    .append(tx)?;
                let said = format!(
                    "{} has not checked in for {minutes} minutes while holding admin rights or a technician login",
                    d.hostname
                );
                super::webhooks::announce_device(tx, &ctx2, d, "device.silent", said, now)?;
            }
            Ok(silent.len() as u64)
        })
        .await
}

/// In the heartbeat flush's transaction, before the beat is stored: a silent device is back
/// (its alert cleared), or its agent reports another version or binary (alerted).
pub fn on_heartbeat(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    (id, beat): (DeviceId, &Heartbeat),
    now: Timestamp,
) -> Result<()> {
    let Some(d) = store::devices::by_id(&tx.reader(), id)? else {
        return Ok(());
    };
    let audit = |e: Event| {
        Audit::new(e, now)
            .tenant(d.tenant_id)
            .device(d.id)
            .actor(ActorKind::Device, Some(d.id.to_string()))
            .target("device", d.id)
    };
    if d.alert == Some(Alert::Silent) {
        store::devices::set_alert(tx, d.id, None, now)?;
        audit(Event::DeviceBack)
            .details(json!({"silent_since": d.last_seen_at.rfc3339()}))
            .append(tx)?;
    }
    if beat.changed_agent(&d) {
        store::devices::set_alert(tx, d.id, Some(Alert::AgentChanged), now)?;
        let new_hash = match beat.agent_hash.as_str() {
            "" => &d.agent_hash,
            h => h,
        };
        audit(Event::AgentVersionChanged)
            .failure()
            .details(json!({"old": d.agent_version, "new": beat.agent_version,
                "old_hash": d.agent_hash, "new_hash": new_hash}))
            .append(tx)?;
        let said = match d.agent_version == beat.agent_version {
            true => format!(
                "The agent binary on {} changed (SHA-256 {}, was {}) under the same version {}",
                d.hostname, new_hash, d.agent_hash, d.agent_version
            ),
            false => format!(
                "The agent on {} reported version {} (was {})",
                d.hostname, beat.agent_version, d.agent_version
            ),
        };
        super::webhooks::announce_device(tx, ctx, &d, "device.agent_changed", said, now)?;
    }
    Ok(())
}

/// In the transaction storing an uploaded `agent_started` event: a start while the device
/// holds rights is alerted (someone may have stopped the agent to keep them). `holding` is
/// what the agent's own state held at the start; agents that do not say are judged by the
/// rights the appliance gave before the start.
pub fn on_agent_started(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    (id, started, holding): (DeviceId, Timestamp, Option<bool>),
    now: Timestamp,
) -> Result<()> {
    let holding = match holding {
        Some(h) => h,
        None => store::devices::held_rights(&tx.reader(), id, started)?,
    };
    if !holding {
        return Ok(());
    }
    let Some(d) = store::devices::by_id(&tx.reader(), id)? else {
        return Ok(());
    };
    if d.alert == Some(Alert::Silent) {
        // Back, and restarted: the silence ends here, not at the next heartbeat flush.
        Audit::new(Event::DeviceBack, now)
            .tenant(d.tenant_id)
            .device(d.id)
            .actor(ActorKind::Device, Some(d.id.to_string()))
            .target("device", d.id)
            .details(json!({"silent_since": d.last_seen_at.rfc3339()}))
            .append(tx)?;
    }
    store::devices::set_alert(tx, d.id, Some(Alert::Restarted), now)?;
    Audit::new(Event::AgentRestarted, now)
        .tenant(d.tenant_id)
        .device(d.id)
        .actor(ActorKind::Device, Some(d.id.to_string()))
        .target("device", d.id)
        .failure()
        .append(tx)?;
    let said = format!(
        "The agent on {} started again while it held admin rights or a technician login",
        d.hostname
    );
    super::webhooks::announce_device(tx, ctx, &d, "device.agent_restarted", said, now)
}

/// Someone who manages the tenant's devices has looked into an alert and dismisses it; the
/// alert and its dismissal stay in the audit log.
pub async fn dismiss(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: DeviceId,
    origin: &Origin,
) -> Result<Alert> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::DevicesManage)?;
    // Silencing evidence is a security decision (SESS-05): a fresh code, as for settings.
    p.require_fresh_mfa(now)?;
    let (p2, o) = (p.clone(), origin.clone());
    ctx.db
        .write(move |tx| {
            let d = store::devices::get(&tx.reader(), &scope, id)?;
            let Some(alert) = d.alert else {
                return Err(Error::InvalidState(
                    "this workstation has no open alert".into(),
                ));
            };
            store::devices::set_alert(tx, d.id, None, now)?;
            Audit::new(Event::DeviceAlertDismissed, now)
                .tenant(d.tenant_id)
                .by(&p2, &o)
                .device(d.id)
                .target("device", d.id)
                .details(json!({"alert": alert.as_str()}))
                .append(tx)?;
            Ok(alert)
        })
        .await
}
