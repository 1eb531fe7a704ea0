//! Ending sessions: revoked, ended from the workstation, after a restore, or when their time runs out (the sweep).

use super::*;

/// Ends an active session: by an approver (`revoked`) or by its user (`ended_by_user`).
pub(super) fn end_in(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    to: State,
    now: Timestamp,
) -> Result<(Request, Vec<DeviceId>)> {
    if r.state != State::Approved || r.kind == Kind::Extension {
        return Err(Error::InvalidState(format!(
            "this request is {}, not an active session",
            r.state.as_str()
        )));
    }
    if !store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        State::Approved,
        to,
        None,
        None,
        None,
        None,
        None,
        now,
    )? {
        return Err(Error::InvalidState("this session has already ended".into()));
    }
    // A revoke takes back what the approval created, a standing rule included; the user
    // ending it early only gives up a one-off approval, never an approver's rule.
    let rule_too = to == State::Revoked || r.grant_scope.is_none();
    let woken = take_back(tx, ctx, scope, r, rule_too, now)?;
    let ended = store::requests::get(&tx.reader(), scope, r.id)?;
    let event = if to == State::Revoked {
        "request.revoked"
    } else {
        "request.ended"
    };
    crate::service::webhooks::announce_change(tx, ctx, scope, &ended, event, now)?;
    Ok((ended, woken))
}

/// What an ended session's approval gave is taken back: an admin session's rights (a
/// `revoke_admin`, which the agent may have carried out on its own clock already), or an
/// application's policy — a one-off approval's always, a standing rule's only when
/// `rule_too`. Returns the devices to wake.
fn take_back(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    rule_too: bool,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let mut woken = vec![r.device_id];
    if r.kind == Kind::Application {
        if rule_too || r.grant_scope == Some(Grant::Once) {
            woken.extend(crate::service::policies::remove_for_request(
                tx, ctx, scope, r, now,
            )?);
        }
        return Ok(woken);
    }
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        r.device_id,
        &Action::RevokeAdmin {
            account: r.account.clone(),
        },
        DEFAULT_TTL_MS,
        now,
    )?;
    Ok(woken)
}

/// After a restore (DUR-04): a session running in the restored copy may have been revoked or
/// ended after it was taken. It is revoked again on the workstation and audited as revoked by
/// the restore, so an old copy never revives rights.
pub(in crate::service) fn revoke_after_restore(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    r: &Request,
    now: Timestamp,
) -> Result<()> {
    let scope = system_scope(r.tenant_id);
    end_in(tx, ctx, &scope, r, State::Revoked, now)?;
    audit_for(Event::RequestRevoked, r, now)
        .details(json!({"why": "restored from a backup"}))
        .append(tx)?;
    Ok(())
}

pub async fn revoke(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: RequestId,
    origin: &Origin,
) -> Result<Request> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::RequestsApprove)?;
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let r = ctx
        .db
        .write(move |tx| {
            let r = store::requests::get(&tx.reader(), &scope, id)?;
            let out = end_in(tx, &ctx2, &scope, &r, State::Revoked, now)?;
            audit_for(Event::RequestRevoked, &r, now)
                .by(&p2, &o)
                .append(tx)?;
            Ok(out)
        })
        .await?;
    let (r, woken) = r;
    crate::service::policies::wake(ctx, woken);
    crate::service::webhooks::kick(ctx);
    Ok(r)
}

/// The workstation's user ends their own session early.
pub async fn end_by_device(
    ctx: &Ctx,
    d: &Device,
    id: RequestId,
    origin: &Origin,
) -> Result<Request> {
    let now = ctx.clock.now();
    let (ctx2, d2, o) = (ctx.clone(), d.clone(), origin.clone());
    let r = ctx
        .db
        .write(move |tx| {
            let r = store::requests::for_device(&tx.reader(), d2.id, id)?.ok_or(Error::NotFound)?;
            let scope = system_scope(r.tenant_id);
            let out = end_in(tx, &ctx2, &scope, &r, State::EndedByUser, now)?;
            audit_for(Event::RequestEnded, &r, now)
                .actor(ActorKind::Device, Some(d2.id.to_string()))
                .from(&o)
                .append(tx)?;
            Ok(out)
        })
        .await?;
    let (r, woken) = r;
    crate::service::policies::wake(ctx, woken);
    crate::service::webhooks::kick(ctx);
    Ok(r)
}

/// Job (start-up and every sweep): pending requests past the tenant's timeout become
/// `timed_out`; sessions past their deadline `expired`, with a revoke sent (the agent has
/// already revoked on its own clock; this makes sure).
pub async fn sweep(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let due = ctx
        .db
        .read(move |r| store::requests::due(r, now, 500))
        .await?;
    let mut done = 0;
    for r in due {
        let ctx2 = ctx.clone();
        let res = ctx
            .db
            .write(move |tx| {
                let scope = system_scope(r.tenant_id);
                if r.state == State::Pending {
                    time_out(tx, &ctx2, &scope, &r, now)?;
                    Ok(vec![r.device_id])
                } else {
                    expire(tx, &ctx2, &scope, &r, now)
                }
            })
            .await;
        match res {
            Ok(woken) => {
                crate::service::policies::wake(ctx, woken);
                done += 1;
            }
            Err(e) => tracing::error!(error = %e, "request sweep"),
        }
    }
    Ok(done)
}

/// A pending request nobody decided in time: timed out, and the user told.
fn time_out(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    now: Timestamp,
) -> Result<()> {
    let moved = store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        State::Pending,
        State::TimedOut,
        None,
        None,
        None,
        None,
        None,
        now,
    )?;
    if moved {
        tell(
            tx,
            ctx,
            scope,
            r,
            format!("Your {} timed out without a decision.", what(r)),
            now,
        )?;
        audit_for(Event::RequestTimedOut, r, now).append(tx)?;
        let timed_out = store::requests::get(&tx.reader(), scope, r.id)?;
        crate::service::webhooks::announce_change(
            tx,
            ctx,
            scope,
            &timed_out,
            "request.timed_out",
            now,
        )?;
    }
    Ok(())
}

/// An approved session past its deadline: expired, rights revoked (the agent has done so on
/// its own clock already), a one-off program approval's policy removed. Returns the devices
/// to wake.
fn expire(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let moved = store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        State::Approved,
        State::Expired,
        None,
        None,
        None,
        None,
        None,
        now,
    )?;
    if !moved {
        return Ok(vec![r.device_id]);
    }
    // A one-off approval ends with its window; a rule stays.
    let woken = take_back(tx, ctx, scope, r, false, now)?;
    audit_for(Event::RequestExpired, r, now)
        .details(json!({"account": r.account}))
        .append(tx)?;
    let expired = store::requests::get(&tx.reader(), scope, r.id)?;
    crate::service::webhooks::announce_change(tx, ctx, scope, &expired, "request.expired", now)?;
    Ok(woken)
}

/// In an offboarding's transaction (disable, erase): what the person asked for from the
/// workstation accounts linked to them ends with them — a waiting request is denied, a
/// running session revoked — audited as the offboarding's doing. Returns how many ended and
/// the devices to wake.
pub(in crate::service) fn offboard_requester(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    user: crate::ids::UserId,
    why: &str,
    now: Timestamp,
) -> Result<(usize, Vec<DeviceId>)> {
    let mut woken = Vec::new();
    let open = store::requests::open_of_linked(&tx.reader(), user, now)?;
    for r in &open {
        let scope = system_scope(r.tenant_id);
        let event = if r.state == State::Pending {
            deny_offboarded(tx, ctx, &scope, r, why, now)?;
            Event::RequestDenied
        } else {
            woken.extend(end_in(tx, ctx, &scope, r, State::Revoked, now)?.1);
            Event::RequestRevoked
        };
        audit_for(event, r, now)
            .actor(ActorKind::System, None)
            .details(json!({"why": why}))
            .append(tx)?;
        woken.push(r.device_id);
    }
    Ok((open.len(), woken))
}

fn deny_offboarded(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    why: &str,
    now: Timestamp,
) -> Result<()> {
    let (from, to) = (State::Pending, State::Denied);
    if !store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        from,
        to,
        None,
        None,
        None,
        Some(why),
        None,
        now,
    )? {
        return Ok(());
    }
    tell(
        tx,
        ctx,
        scope,
        r,
        format!("Your {} was denied: {why}", what(r)),
        now,
    )?;
    let denied = store::requests::get(&tx.reader(), scope, r.id)?;
    crate::service::webhooks::announce_change(tx, ctx, scope, &denied, "request.denied", now)
}
