//! Approving and denying: by a person (never their own request: JIT-01) or by an auto-approval rule, and the agent confirming a grant.

use super::*;

/// Who approved: a person (user id) or an auto-approval rule (rule id).
#[derive(Clone, Copy)]
pub(super) enum Decider<'a> {
    Person(&'a Principal, &'a Origin),
    Rule(&'a str),
}

/// Approves inside `tx`: grant with an absolute expiry (or a moved deadline for an
/// extension), audited with who or which rule decided.
pub(super) fn approve_in(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    a: Approval,
    decider: Decider<'_>,
    now: Timestamp,
) -> Result<(Request, Vec<DeviceId>)> {
    let minutes = a.minutes;
    let (by, rule) = match decider {
        Decider::Person(p, _) => (Some(p.user_id), None),
        Decider::Rule(r) => (None, Some(r)),
    };
    let (expires, session) = deadline(tx, scope, r, minutes, now)?;
    if !store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        State::Pending,
        State::Approved,
        by,
        rule,
        Some(minutes),
        None,
        Some(expires),
        now,
    )? {
        return Err(Error::InvalidState(
            "this request has already been decided".into(),
        ));
    }
    let (woken, policy) = carry_out(tx, ctx, scope, r, a.grant, expires, session, decider, now)?;
    let then = if r.kind == Kind::Application {
        " Run it again now."
    } else {
        ""
    };
    tell(
        tx,
        ctx,
        scope,
        r,
        format!(
            "Your {} was approved for {minutes} minutes, until {}.{then}",
            what(r),
            expires.rfc3339()
        ),
        now,
    )?;
    let grant = (r.kind == Kind::Application).then_some(a.grant.as_str());
    let mut audit = audit_for(if r.kind == Kind::Extension { Event::SessionExtended } else { Event::RequestApproved }, r, now)
        .details(json!({"minutes": minutes, "expires_at": expires.rfc3339(), "rule": rule, "account": r.account,
            "grant": grant, "policy": policy}));
    if let Decider::Person(p, o) = decider {
        audit = audit.by(p, o);
    }
    audit.append(tx)?;
    let approved = store::requests::get(&tx.reader(), scope, r.id)?;
    crate::service::webhooks::announce_change(tx, ctx, scope, &approved, "request.approved", now)?;
    Ok((approved, woken))
}

/// When the approved session ends, and which session its events belong to: from now, or,
/// for an extension, from the running session's deadline (at most 24 h ahead).
fn deadline(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    r: &Request,
    minutes: u32,
    now: Timestamp,
) -> Result<(Timestamp, SessionRef)> {
    // Every event of a session carries the session's own request id and ticket, also
    // after an extension.
    let own = SessionRef {
        request_id: r.id.to_string(),
        ticket: r.ticket.clone(),
    };
    if r.kind != Kind::Extension {
        return Ok((now.plus_secs(i64::from(minutes) * 60), own));
    }
    let parent = store::requests::get(&tx.reader(), scope, r.parent_id.ok_or(Error::NotFound)?)?;
    if parent.state != State::Approved {
        return Err(Error::InvalidState(
            "the session this extension is for has already ended".into(),
        ));
    }
    let base = parent.expires_at.unwrap_or(now).max(now);
    let new = base.plus_secs(i64::from(minutes) * 60);
    if new.millis() - now.millis() > rules::MAX_MINUTES as i64 * 60_000 {
        return Err(Error::validation(
            "duration_minutes",
            "the session would then run past 24 hours from now",
        ));
    }
    store::requests::extend(tx, scope, parent.id, new)?;
    let session = SessionRef {
        request_id: parent.id.to_string(),
        ticket: parent.ticket.or_else(|| r.ticket.clone()),
    };
    Ok((new, session))
}

/// What the workstation is told to do: an application request becomes a policy (pushed to
/// the devices it covers), an admin session a `grant_admin` command. Returns the devices to
/// wake and the policy made.
#[allow(clippy::too_many_arguments)]
fn carry_out(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    grant: Grant,
    expires: Timestamp,
    session: SessionRef,
    decider: Decider<'_>,
    now: Timestamp,
) -> Result<(Vec<DeviceId>, Option<String>)> {
    let mut woken = vec![r.device_id];
    if r.kind == Kind::Application {
        let made = crate::service::policies::FromRequest {
            grant,
            until: expires,
            by: match decider {
                Decider::Person(p, o) => Some((p, o)),
                Decider::Rule(_) => None,
            },
        };
        let (id, pushed) = crate::service::policies::from_request(tx, ctx, scope, r, made, now)?;
        store::requests::set_policy(tx, scope, r.id, grant, &id)?;
        woken.extend(pushed);
        return Ok((woken, Some(id)));
    }
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        r.device_id,
        &Action::GrantAdmin {
            account: r.account.clone(),
            expires_at: expires.millis(),
            session: Some(session),
        },
        DEFAULT_TTL_MS,
        now,
    )?;
    Ok((woken, None))
}

/// The workstation's answer to a grant: confirmed (the session now runs there) or not carried
/// out (the request ends `failed` with the agent's reason, and nobody sees a countdown for
/// rights the user does not have). Inside the acknowledgement's transaction.
pub fn on_ack(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    c: &store::commands::StoredCommand,
    done: bool,
    details: &str,
    now: Timestamp,
) -> Result<()> {
    if c.kind != crate::model::commands::CommandKind::GrantAdmin {
        return Ok(());
    }
    let args: serde_json::Value = serde_json::from_str(&c.args).unwrap_or_default();
    let Some(id) = args["session"]["request_id"]
        .as_str()
        .and_then(RequestId::parse)
    else {
        return Ok(());
    };
    let scope = system_scope(c.tenant_id);
    let Ok(r) = store::requests::get(&tx.reader(), &scope, id) else {
        return Ok(());
    };
    if done {
        store::requests::mark_granted(tx, &scope, id, now)?;
        return Ok(());
    }
    let reason = crate::service::logins::reason_of(details);
    if store::requests::fail_grant(tx, &scope, id, &reason, now)? {
        audit_for(Event::GrantFailed, &r, now)
            .failure()
            .actor(ActorKind::Device, Some(c.device_id.to_string()))
            .details(json!({"account": r.account, "reason": reason}))
            .append(tx)?;
        let failed = store::requests::get(&tx.reader(), &scope, id)?;
        crate::service::webhooks::announce_change(tx, ctx, &scope, &failed, "request.failed", now)?;
    }
    Ok(())
}

pub(super) fn is_self(
    p: &Principal,
    r: &Request,
    approver_username: &str,
    linked: &[String],
) -> bool {
    // Linked to the approver at any time the request was open, or the approver's own
    // workstation account.
    linked.iter().any(|u| *u == p.user_id.to_string())
        || r.account == approver_username
        || r.account == format!("msp-{approver_username}")
}

/// Approve (`requests.approve`, step-up): the approver sets the duration (≤ tenant maximum);
/// nobody approves their own request (JIT-01); one winner among concurrent decisions.
pub async fn approve(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: RequestId,
    minutes: Option<i64>,
    grant: Grant,
    origin: &Origin,
) -> Result<Request> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::RequestsApprove)?;
    if grant != Grant::Once {
        // A standing rule is a policy: whoever makes one must be allowed to manage policies.
        p.scope(t, Permission::PoliciesManage)?;
    }
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o, max) = (
        ctx.clone(),
        p.clone(),
        origin.clone(),
        t.settings.jit_max_minutes,
    );
    let r = ctx
        .db
        .write(move |tx| {
            let r = store::requests::get(&tx.reader(), &scope, id)?;
            if r.state != State::Pending {
                return Err(Error::InvalidState(format!(
                    "this request is already {}",
                    r.state.as_str()
                )));
            }
            let me = store::users::credentials_by_id(&tx.reader(), p2.user_id)?
                .map(|c| c.user.username)
                .unwrap_or_default();
            let linked =
                store::requests::linked_since(&tx.reader(), &r.endpoint_user_id, r.created_at)?;
            if is_self(&p2, &r, &me, &linked) {
                return Err(Error::Forbidden("nobody approves their own request".into()));
            }
            let minutes = rules::check_minutes(
                "duration_minutes",
                minutes.unwrap_or(i64::from(r.minutes_requested)),
                max,
            )?;
            if r.kind != Kind::Application && grant != Grant::Once {
                return Err(Error::validation(
                    "grant",
                    "only an application request becomes a rule",
                ));
            }
            approve_in(
                tx,
                &ctx2,
                &scope,
                &r,
                Approval { minutes, grant },
                Decider::Person(&p2, &o),
                now,
            )
        })
        .await?;
    let (r, woken) = r;
    crate::service::policies::wake(ctx, woken);
    crate::service::webhooks::kick(ctx);
    Ok(r)
}

pub async fn deny(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: RequestId,
    reason: &str,
    origin: &Origin,
) -> Result<Request> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::RequestsApprove)?;
    p.require_fresh_mfa(now)?;
    let reason = rules::check_justification(reason, true).map_err(|_| {
        Error::validation("reason", "give the requester a reason (≤ 2000 characters)")
    })?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let r = ctx
        .db
        .write(move |tx| {
            let r = store::requests::get(&tx.reader(), &scope, id)?;
            if r.state != State::Pending {
                return Err(Error::InvalidState(format!(
                    "this request is already {}",
                    r.state.as_str()
                )));
            }
            if !store::requests::transition(
                tx,
                &scope,
                id,
                r.version,
                State::Pending,
                State::Denied,
                Some(p2.user_id),
                None,
                None,
                Some(&reason),
                None,
                now,
            )? {
                return Err(Error::InvalidState(
                    "this request has already been decided".into(),
                ));
            }
            tell(
                tx,
                &ctx2,
                &scope,
                &r,
                format!("Your {} was denied: {reason}", what(&r)),
                now,
            )?;
            audit_for(Event::RequestDenied, &r, now)
                .by(&p2, &o)
                .details(json!({"reason": reason}))
                .append(tx)?;
            let denied = store::requests::get(&tx.reader(), &scope, id)?;
            crate::service::webhooks::announce_change(
                tx,
                &ctx2,
                &scope,
                &denied,
                "request.denied",
                now,
            )?;
            Ok(denied)
        })
        .await?;
    ctx.wake.wake(r.device_id);
    crate::service::webhooks::kick(ctx);
    Ok(r)
}
