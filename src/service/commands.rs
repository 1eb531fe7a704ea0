//! Agent commands: queued in the transaction of the change that needs them, delivered by
//! long-poll, acknowledged once; and the events agents upload.

use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::TenantScope;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{CommandId, DeviceId, TenantId};
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::{Action, CommandKind, CommandState, MAX_GRANT_MS};
use crate::model::devices::{Device, DeviceKey, Heartbeat};
use crate::proto::{self, AckRequest, EventKind, PollRequest, PollResponse};
use crate::store::{self, WriteTx, commands::StoredCommand};

/// How long a queued command stays deliverable by default.
pub const DEFAULT_TTL_MS: i64 = 24 * 60 * 60 * 1000;
pub const MAX_POLL_HOLD_SECS: u64 = 25;

fn sealed_args_ctx<'a>(id: &'a str, tenant: &'a str) -> crate::crypto::SealContext<'a> {
    crate::crypto::SealContext {
        table: "commands",
        column: "args_sealed",
        row_id: id,
        tenant_id: tenant,
    }
}

/// Queues `action` for a device of the scope's tenant inside `tx` (with the change that needs
/// it and its audit entry). Wake the device after the transaction commits.
pub fn enqueue(
    tx: &WriteTx<'_>,
    crypto: &crate::crypto::Crypto,
    scope: &TenantScope,
    device: DeviceId,
    action: &Action,
    ttl_ms: i64,
    now: Timestamp,
) -> Result<StoredCommand> {
    let d = store::devices::get(&tx.reader(), scope, device)?;
    if !d.active {
        return Err(Error::InvalidState(
            "this workstation has been retired".into(),
        ));
    }
    if let Action::GrantAdmin { expires_at, .. } = action
        && *expires_at - now.millis() > MAX_GRANT_MS
    {
        return Err(Error::validation(
            "duration",
            "a grant lasts at most 24 hours",
        ));
    }
    let id = CommandId::new();
    // Secrets travel to the agent but are stored only sealed (CRY-04).
    let (args, args_sealed) = match action.redacted_args() {
        Some(shown) => {
            let sealed = crypto.seal(
                &sealed_args_ctx(&id.to_string(), &scope.tenant().to_string()),
                action.args().to_string().as_bytes(),
            )?;
            (shown.to_string(), Some(sealed))
        }
        None => (action.args().to_string(), None),
    };
    let c = StoredCommand {
        id,
        tenant_id: scope.tenant(),
        device_id: device,
        seq: store::devices::next_seq(tx, device)?,
        kind: action.kind(),
        args,
        args_sealed,
        issued_at: now,
        not_after: now.plus_millis(ttl_ms),
        state: CommandState::Queued,
        acked_at: None,
        details: None,
    };
    store::commands::insert(tx, &c)?;
    Audit::new(Event::CommandQueued, now)
        .tenant(scope.tenant())
        .device(device)
        .target("command", c.id)
        // A managed account is named by the command (its label joins the name in), not in the
        // chain: the name derives from a username that erasure replaces (DESIGN §6).
        .details(json!({"kind": c.kind.as_str(), "seq": c.seq,
            "account": action.account().filter(|a| !crate::model::commands::is_managed_account(a))}))
        .append(tx)?;
    Ok(c)
}

/// Queues one command on its own (jobs, tests, and actions with nothing else to write).
pub async fn queue(
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    action: Action,
) -> Result<StoredCommand> {
    let now = ctx.clock.now();
    let scope = *scope;
    let crypto = ctx.crypto.clone();
    let c = ctx
        .db
        .write(move |tx| enqueue(tx, &crypto, &scope, device, &action, DEFAULT_TTL_MS, now))
        .await?;
    ctx.wake.wake(device);
    Ok(c)
}

/// The envelope sent to the agent, with sealed arguments opened.
pub fn to_proto(crypto: &crate::crypto::Crypto, c: &StoredCommand) -> Result<proto::Command> {
    let args = match &c.args_sealed {
        Some(blob) => serde_json::from_slice(&crypto.open(
            &sealed_args_ctx(&c.id.to_string(), &c.tenant_id.to_string()),
            blob,
        )?)?,
        None => serde_json::from_str(&c.args).unwrap_or_default(),
    };
    Ok(proto::Command {
        id: c.id,
        device_id: c.device_id,
        tenant_id: c.tenant_id,
        seq: c.seq,
        issued_at: c.issued_at.millis(),
        not_after: c.not_after.millis(),
        kind: c.kind.as_str().to_string(),
        args,
    })
}

/// The long-poll: records the heartbeat, answers at once when commands are queued, otherwise
/// waits (≤ 25 s) for a wake-up. Unacknowledged commands are delivered again every time.
pub async fn poll(ctx: &Ctx, d: &DeviceKey, req: PollRequest) -> Result<PollResponse> {
    if ctx.stopping.is_set() {
        return Err(Error::Unavailable(
            "the appliance is shutting down; retry shortly".into(),
        ));
    }
    let started = crate::clock::monotonic();
    super::logins::check_versions(ctx, d, &req.password_versions).await?;
    let hold = Duration::from_secs(
        req.wait_secs
            .unwrap_or(MAX_POLL_HOLD_SECS)
            .min(MAX_POLL_HOLD_SECS),
    );
    ctx.beats.record(
        d.id,
        Heartbeat {
            at: ctx.clock.now(),
            agent_version: req.agent_version.chars().take(64).collect(),
            agent_hash: req.agent_hash.chars().take(64).collect(),
            admins: req.admin_members.into_iter().take(200).collect(),
        },
    );
    let _held = ctx.stopping.hold();
    let _connected = ctx.wake.hold(d.id);
    let wake = ctx.wake.handle(d.id);
    let read = |id: DeviceId| queued(ctx, id);
    let mut pending = read(d.id).await?;
    let mut waited = Duration::ZERO;
    if pending.is_empty() && !ctx.stopping.is_set() {
        // Woken by a queued command, a retirement or shutdown — or the hold runs out. A
        // retired device learns it at its next call, which fails authentication.
        let from = crate::clock::monotonic();
        tokio::select! {
            _ = tokio::time::timeout(hold, wake.notified()) => {}
            _ = ctx.stopping.wait() => {}
        }
        waited = from.elapsed();
        pending = read(d.id).await?;
    }
    let commands = pending
        .iter()
        .map(|c| to_proto(&ctx.crypto, c))
        .collect::<Result<Vec<_>>>()?;
    // The poll's own cost, without the hold (the HTTP histogram of /agent/v1/poll has it).
    metrics::histogram!("hourglass_poll_work_seconds")
        .record(started.elapsed().saturating_sub(waited).as_secs_f64());
    Ok(PollResponse {
        commands,
        server_time: ctx.clock.now().millis(),
    })
}

/// A device's queued commands; none without touching the database when its marker says
/// nothing is queued (set as a command is queued, dropped as one is answered).
async fn queued(ctx: &Ctx, id: DeviceId) -> Result<Vec<StoredCommand>> {
    let hot = ctx.db.hot();
    if hot.pending(id) == Some(false) {
        return Ok(Vec::new());
    }
    let (generation, now) = (hot.generation(), ctx.clock.now());
    let found = ctx
        .db
        .read(move |r| store::commands::pending(r, id, now))
        .await?;
    hot.remember_pending(id, !found.is_empty(), generation);
    Ok(found)
}

/// The agent's answer to one of its commands; another device's command is not found.
pub async fn ack(
    ctx: &Ctx,
    d: &Device,
    id: CommandId,
    req: AckRequest,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let (device, tenant, o, ctx2) = (d.id, d.tenant_id, origin.clone(), ctx.clone());
    let details: String = req.details.chars().take(2000).collect();
    let (done, deleted) = ctx
        .db
        .write(move |tx| {
            let c =
                store::commands::for_device(&tx.reader(), device, id)?.ok_or(Error::NotFound)?;
            if !store::commands::ack(tx, device, id, state_of(req.result), &details, now)? {
                return Ok((true, None)); // already acknowledged: re-sent acks are idempotent
            }
            let event = match req.result {
                proto::AckResult::Done => Event::CommandDone,
                proto::AckResult::Failed => Event::CommandFailed,
                proto::AckResult::Refused => Event::CommandRefused,
            };
            let mut a = Audit::new(event, now)
                .tenant(tenant)
                .actor(ActorKind::Device, Some(device.to_string()))
                .device(device)
                .from(&o)
                .target("command", id)
                .details(json!({"kind": c.kind.as_str(), "seq": c.seq, "details": details}));
            if req.result != proto::AckResult::Done {
                a = a.failure();
            }
            a.append(tx)?;
            let done = req.result == proto::AckResult::Done;
            // Only a deletion's sealed arguments are opened (they name the erased account).
            let deleted = match done && c.kind == CommandKind::DeleteAccount {
                true => super::logins::on_account_deleted(tx, &to_proto(&ctx2.crypto, &c)?)?,
                false => None,
            };
            super::logins::on_ack(tx, &c, done, &details, now)?;
            super::requests::on_ack(tx, &ctx2, &c, done, &details, now)?;
            Ok((done, deleted))
        })
        .await?;
    if let Some(a) = deleted {
        ctx.beats.forget_member(d.id, &a);
        // The WAL's older frames (heartbeats naming the account) go with it.
        ctx.db.truncate_wal()?;
    }
    // Only a failed grant may have queued a webhook delivery; a done ack costs nothing more.
    if !done {
        super::webhooks::kick(ctx);
    }
    Ok(())
}

/// Stores a batch of events, each once by its id; new ones are audited.
pub async fn events(
    ctx: &Ctx,
    d: &Device,
    req: proto::EventsRequest,
    origin: &Origin,
) -> Result<proto::EventsResponse> {
    let now = ctx.clock.now();
    for e in &req.events {
        if e.id.is_empty()
            || e.id.len() > 100
            || e.kind.as_str().is_empty()
            || e.kind.as_str().len() > 64
        {
            return Err(Error::validation(
                "events",
                "each event needs an id (≤ 100 chars) and a kind (≤ 64 chars)",
            ));
        }
    }
    let (device, tenant, o, ctx2) = (d.id, d.tenant_id, origin.clone(), ctx.clone());
    let (resp, woken) = ctx
        .db
        .write(move |tx| {
            let mut accepted = 0;
            let mut woken = Vec::new();
            for e in &req.events {
                let stored = store::commands::NewEvent {
                    id: &e.id,
                    kind: e.kind.as_str(),
                    at: e.at,
                    data: &e.data,
                };
                if store::commands::insert_event(tx, tenant, device, &stored, now)? {
                    accepted += 1;
                    woken.extend(act_on(tx, &ctx2, (tenant, device), e, &o, now)?);
                }
            }
            Ok((
                proto::EventsResponse {
                    accepted,
                    duplicates: req.events.len() - accepted,
                },
                woken,
            ))
        })
        .await?;
    for d in woken {
        ctx.wake.wake(d);
    }
    Ok(resp)
}

/// One new event from a workstation: what it means for sessions and policies, and its audit
/// entry (carrying the session's request id and ticket when the event names them). Returns
/// devices to wake.
fn act_on(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    (tenant, device): (TenantId, DeviceId),
    e: &proto::Event,
    o: &Origin,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    if e.kind == EventKind::OfflineLogin {
        return super::logins::offline_used(tx, ctx, tenant, device, &e.data, now);
    }
    let mut woken = Vec::new();
    if e.kind == EventKind::AgentStarted {
        let started = Timestamp::from_millis(e.at);
        let holding = e.data["holding"].as_bool();
        super::tamper::on_agent_started(tx, ctx, (device, started, holding), now)?;
    }
    if e.kind == EventKind::Logon && e.data["observed"] == true {
        super::logins::observed_logon(tx, tenant, device, &e.data, now)?;
    }
    // A run the agent allowed offline uses up a "just this request" policy.
    if e.kind == EventKind::ElevateOnDemand
        && e.data["decision"]["decision"] == "allow"
        && let Some(p) = e.data["decision"]["policy"].as_str()
    {
        let scope = crate::authz::system_scope(tenant);
        woken.extend(super::policies::consume_once(tx, ctx, &scope, p, now)?);
    }
    let code = match e.kind {
        EventKind::Ppam => Event::Ppam,
        EventKind::Logon => Event::SessionLogon,
        EventKind::ElevateOnDemand => Event::ElevateOnDemand,
        EventKind::PassiveToken => Event::PassiveToken,
        EventKind::StandingAdminRemoved => Event::StandingAdminRemoved,
        EventKind::OfflineLoginRefused => Event::OfflineLoginRefused,
        _ => Event::DeviceEvent,
    };
    let mut a = Audit::new(code, now)
        .tenant(tenant)
        .actor(ActorKind::Device, Some(device.to_string()))
        .device(device)
        .from(o)
        .target("event", &e.id)
        .details(json!({"kind": e.kind.as_str(), "agent_time": e.at,
            "data": super::logins::for_the_chain(&tx.reader(), tenant, &e.data)?}));
    if let Some(r) = e.data.get("request_id").and_then(|v| v.as_str()) {
        let ticket = e
            .data
            .get("ticket")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        a = a.request(r, ticket);
    }
    if e.kind == EventKind::OfflineLoginRefused {
        a = a.failure();
    }
    a.append(tx)?;
    Ok(woken)
}

/// Job: queued commands past their `not_after` stop being delivered.
pub async fn expire(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    ctx.db
        .write(move |tx| {
            store::logins::fail_undelivered(tx, now)?;
            store::commands::expire(tx, now)
        })
        .await
}

/// What the agent answered, as the command's state.
fn state_of(r: proto::AckResult) -> CommandState {
    match r {
        proto::AckResult::Done => CommandState::Done,
        proto::AckResult::Failed => CommandState::Failed,
        proto::AckResult::Refused => CommandState::Refused,
    }
}
