//! End-user JIT admin sessions (DESIGN §3): request, auto-approve, approve, deny, revoke,
//! end, extend, time out, expire. Each transition is one transaction with its audit entry
//! and its agent command (JIT-03).

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::commands::{self, DEFAULT_TTL_MS};
use crate::authz::{Permission, Principal, TenantScope, system_scope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, RequestId};
use crate::model::audit::{ActorKind, Event};
use crate::model::commands::{Action, SessionRef};
use crate::model::policies as engine;
use crate::model::requests::{self as rules, DISABLED_MESSAGE, Grant, State};
use crate::model::tenants::Tenant;
use crate::model::zones;
pub use crate::store::requests::Filter;
use crate::store::{self, WriteTx, devices::Device, requests::Request};

/// What a workstation asks for (a wire type of the agent protocol).
pub use crate::proto::RequestAsk as Ask;

/// What the requester is told a request was for.
fn what(r: &Request) -> String {
    match (r.kind.as_str(), &r.app) {
        ("extension", _) => "extension of your administrator session".into(),
        ("application", Some(a)) => format!("request to run {} with administrator rights", a.path),
        _ => "request for administrator rights".into(),
    }
}

/// An approver's decision: for how long, and (application requests) as what.
#[derive(Clone, Copy, Debug)]
pub struct Approval {
    pub minutes: u32,
    pub grant: Grant,
}

fn audit_for(e: Event, r: &Request, now: Timestamp) -> Audit {
    Audit::new(e, now)
        .tenant(r.tenant_id)
        .device(r.device_id)
        .target("request", r.id)
        .request(r.id, r.ticket.clone())
}

/// Tells the requester's workstation the outcome (shown to the user by the agent).
fn tell(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    message: String,
    now: Timestamp,
) -> Result<()> {
    commands::enqueue(
        tx,
        &ctx.crypto,
        scope,
        r.device_id,
        &Action::Notify { message },
        DEFAULT_TTL_MS,
        now,
    )?;
    Ok(())
}

/// Who approved: a person (user id) or an auto-approval rule (rule id).
#[derive(Clone, Copy)]
enum Decider<'a> {
    Person(&'a Principal, &'a Origin),
    Rule(&'a str),
}

/// Approves inside `tx`: grant with an absolute expiry (or a moved deadline for an
/// extension), audited with who or which rule decided.
fn approve_in(
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
        Decider::Person(p, _) => (Some(p.user_id.to_string()), None),
        Decider::Rule(r) => (None, Some(r)),
    };
    // Every event of a session carries the session's own request id and ticket, also
    // after an extension.
    let mut session = SessionRef {
        request_id: r.id.to_string(),
        ticket: r.ticket.clone(),
    };
    let expires = if r.kind == "extension" {
        let parent =
            store::requests::get(&tx.reader(), scope, r.parent_id.ok_or(Error::NotFound)?)?;
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
        session = SessionRef {
            request_id: parent.id.to_string(),
            ticket: parent.ticket.or_else(|| r.ticket.clone()),
        };
        new
    } else {
        now.plus_secs(i64::from(minutes) * 60)
    };
    if !store::requests::transition(
        tx,
        scope,
        r.id,
        r.version,
        State::Pending,
        State::Approved,
        by.as_deref(),
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
    let mut woken = vec![r.device_id];
    let mut policy = None;
    if r.kind == "application" {
        let made = super::policies::FromRequest {
            grant: a.grant,
            until: expires,
            by: match decider {
                Decider::Person(p, o) => Some((p, o)),
                Decider::Rule(_) => None,
            },
        };
        let (id, pushed) = super::policies::from_request(tx, ctx, scope, r, made, now)?;
        store::requests::set_policy(tx, scope, r.id, a.grant.as_str(), &id)?;
        woken.extend(pushed);
        policy = Some(id);
    } else {
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
    }
    let then = if r.kind == "application" {
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
    let grant = (r.kind == "application").then_some(a.grant.as_str());
    let mut audit = audit_for(if r.kind == "extension" { Event::SessionExtended } else { Event::RequestApproved }, r, now)
        .details(json!({"minutes": minutes, "expires_at": expires.rfc3339(), "rule": rule, "account": r.account,
            "grant": grant, "policy": policy}));
    if let Decider::Person(p, o) = decider {
        audit = audit.by(p, o);
    }
    audit.append(tx)?;
    Ok((store::requests::get(&tx.reader(), scope, r.id)?, woken))
}

/// The workstation's answer to a grant: confirmed (the session now runs there) or not carried
/// out (the request ends `failed` with the agent's reason, and nobody sees a countdown for
/// rights the user does not have). Inside the acknowledgement's transaction.
pub fn on_ack(
    tx: &WriteTx<'_>,
    c: &store::commands::StoredCommand,
    done: bool,
    details: &str,
    now: Timestamp,
) -> Result<()> {
    if c.kind != "grant_admin" {
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
    let reason = super::logins::reason_of(details);
    if store::requests::fail_grant(tx, &scope, id, &reason, now)? {
        audit_for(Event::GrantFailed, &r, now)
            .failure()
            .actor(ActorKind::Device, Some(c.device_id.to_string()))
            .details(json!({"account": r.account, "reason": reason}))
            .append(tx)?;
    }
    Ok(())
}

/// A workstation's request: validated, recorded (declined at once when JIT is off), and
/// approved at once when an auto-approval rule matches.
pub async fn create(ctx: &Ctx, d: &Device, ask: Ask, origin: &Origin) -> Result<Request> {
    let now = ctx.clock.now();
    let account = ask.account.trim().to_string();
    if account.is_empty()
        || account.len() > 32
        || !account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Error::validation("account", "must be a local account name"));
    }
    let (d2, ctx2, o) = (d.clone(), ctx.clone(), origin.clone());
    let r = ctx
        .db
        .write(move |tx| {
            let scope = system_scope(d2.tenant_id);
            let t = store::tenants::get(&tx.reader(), &scope)?;
            let eu = store::requests::endpoint_user(tx, &scope, d2.id, &account, now)?;
            let id = RequestId::new();
            let ticket = rules::check_ticket(ask.ticket.as_deref())?;
            let mut parent = None;
            let kind = match ask.kind.as_str() {
                "admin" => "admin",
                "extension" => {
                    let open = store::requests::open_for(&tx.reader(), &scope, &eu)?.filter(|o| o.state == State::Approved);
                    parent = Some(open.ok_or_else(|| Error::InvalidState("there is no running session to extend".into()))?.id);
                    "extension"
                }
                "application" => "application",
                _ => return Err(Error::validation("kind", "must be admin, extension or application")),
            };
            let app = match (kind, &ask.app) {
                ("application", Some(app)) => {
                    engine::check_app(app)?;
                    engine::check_rule(engine::RuleKind::Hash, &app.sha256)
                        .map_err(|_| Error::validation("sha256", "an application request needs the program's SHA-256"))?;
                    if let Some(open) = store::requests::pending_app(&tx.reader(), &scope, &eu, &app.sha256)? {
                        return Err(Error::Conflict(format!(
                            "You already asked to run this program ({open}); wait for a decision first."
                        )));
                    }
                    Some(serde_json::to_string(app)?)
                }
                ("application", None) => return Err(Error::validation("app", "an application request describes the program")),
                (_, Some(_)) => return Err(Error::validation("app", "only application requests describe a program")),
                _ => None,
            };
            let minutes_raw = ask.minutes;
            let new = |state: State, minutes: u32| store::requests::NewRequest {
                id,
                device: d2.id,
                endpoint_user: "",
                kind,
                parent,
                minutes,
                justification: "",
                ticket: None,
                state,
                reason: None,
                app: app.as_deref(),
            };
            if !t.settings.jit_enabled {
                let minutes = minutes_raw.clamp(5, 1440) as u32;
                let j = rules::check_justification(&ask.reason, false)?;
                let n = store::requests::NewRequest {
                    endpoint_user: &eu,
                    justification: &j,
                    ticket: ticket.as_deref(),
                    reason: Some(DISABLED_MESSAGE),
                    ..new(State::Declined, minutes)
                };
                store::requests::insert(tx, &scope, &n, now)?;
                let r = store::requests::get(&tx.reader(), &scope, id)?;
                audit_for(Event::RequestDeclined, &r, now).failure().actor(ActorKind::Device, Some(d2.id.to_string())).from(&o)
                    .details(json!({"reason": DISABLED_MESSAGE, "account": r.account})).append(tx)?;
                return Ok((r, t, vec![d2.id]));
            }
            let minutes = rules::check_minutes("minutes", minutes_raw, t.settings.jit_max_minutes)?;
            let j = rules::check_justification(&ask.reason, t.settings.jit_justification_required)?;
            let n = store::requests::NewRequest { endpoint_user: &eu, justification: &j, ticket: ticket.as_deref(), ..new(State::Pending, minutes) };
            store::requests::insert(tx, &scope, &n, now)?;
            let r = store::requests::get(&tx.reader(), &scope, id)?;
            audit_for(Event::RequestCreated, &r, now).actor(ActorKind::Device, Some(d2.id.to_string())).from(&o)
                .details(json!({"account": r.account, "minutes": minutes, "kind": kind, "justification": j, "app": r.app})).append(tx)?;
            let rule = store::requests::rules(&tx.reader(), &scope)?
                .into_iter()
                .find(|x| x.matches(&r.account, &d2.id.to_string(), minutes, zones::minute_of_day(now.millis(), &t.settings.time_zone)));
            match rule {
                Some(rule) => {
                    let a = Approval { minutes, grant: Grant::Once };
                    let (r, woken) = approve_in(tx, &ctx2, &scope, &r, a, Decider::Rule(&rule.id), now)?;
                    Ok((r, t, woken))
                }
                None => {
                    super::webhooks::announce(tx, &ctx2, &t, &r, now)?;
                    Ok((r, t, vec![d2.id]))
                }
            }
        })
        .await?;
    let (r, t, woken) = r;
    super::policies::wake(ctx, woken);
    if r.state == State::Pending {
        super::webhooks::kick(ctx);
        super::webhooks::mail_approvers(ctx, &t, &r);
    }
    Ok(r)
}

fn is_self(p: &Principal, r: &Request, approver_username: &str, linked: &[String]) -> bool {
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
            if r.kind != "application" && grant != Grant::Once {
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
    super::policies::wake(ctx, woken);
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
                Some(&p2.user_id.to_string()),
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
            store::requests::get(&tx.reader(), &scope, id)
        })
        .await?;
    ctx.wake.wake(r.device_id);
    Ok(r)
}

/// Ends an active session: by an approver (`revoked`) or by its user (`ended_by_user`).
fn end_in(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    r: &Request,
    to: State,
    now: Timestamp,
) -> Result<(Request, Vec<DeviceId>)> {
    if r.state != State::Approved || r.kind == "extension" {
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
    let mut woken = vec![r.device_id];
    if r.kind == "application" {
        // A revoke takes back what the approval created, a standing rule included; the user
        // ending it early only gives up a one-off approval, never an approver's rule.
        if to == State::Revoked || r.grant_scope.as_deref().is_none_or(|g| g == "once") {
            woken.extend(super::policies::remove_for_request(tx, ctx, scope, r, now)?);
        }
    } else {
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
    }
    Ok((store::requests::get(&tx.reader(), scope, r.id)?, woken))
}

/// After a restore (DUR-04): a session running in the restored copy may have been revoked or
/// ended after it was taken. It is revoked again on the workstation and audited as revoked by
/// the restore, so an old copy never revives rights.
pub(super) fn revoke_after_restore(
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
    super::policies::wake(ctx, woken);
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
    super::policies::wake(ctx, woken);
    Ok(r)
}

pub async fn get_for_device(ctx: &Ctx, d: DeviceId, id: RequestId) -> Result<Request> {
    ctx.db
        .read(move |r| store::requests::for_device(r, d, id))
        .await?
        .ok_or(Error::NotFound)
}

pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant, f: Filter) -> Result<Vec<Request>> {
    let scope = p.scope(t, Permission::RequestsView)?;
    if let Some(s) = &f.state {
        State::parse(s).ok_or_else(|| {
            Error::validation(
                "state",
                format!(
                    "must be one of {}",
                    State::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    }
    ctx.db
        .read(move |r| store::requests::list(r, &scope, &f, 200))
        .await
}

/// Pending and active counts in each of `tenants` the principal may see requests of.
pub async fn counts(
    ctx: &Ctx,
    p: &Principal,
    tenants: &[Tenant],
) -> Result<Vec<(Tenant, i64, i64)>> {
    let scoped: Vec<_> = tenants
        .iter()
        .filter_map(|t| {
            p.scope(t, Permission::RequestsView)
                .ok()
                .map(|s| (t.clone(), s))
        })
        .collect();
    ctx.db
        .read(move |r| {
            scoped
                .into_iter()
                .map(|(t, s)| store::requests::counts(r, &s).map(|(p, a)| (t, p, a)))
                .collect()
        })
        .await
}

/// Pending requests across `tenants` for MSP staff: (tenant, request), oldest first.
pub async fn pending_across(
    ctx: &Ctx,
    p: &Principal,
    tenants: &[Tenant],
) -> Result<Vec<(Tenant, Request)>> {
    let scoped: Vec<_> = tenants
        .iter()
        .filter_map(|t| {
            p.scope(t, Permission::RequestsView)
                .ok()
                .map(|s| (t.clone(), s))
        })
        .collect();
    let f = Filter {
        state: Some("pending".into()),
        ..Filter::default()
    };
    let mut out = ctx
        .db
        .read(move |r| {
            let mut out = Vec::new();
            for (t, s) in scoped {
                out.extend(
                    store::requests::list(r, &s, &f, 200)?
                        .into_iter()
                        .map(|x| (t.clone(), x)),
                );
            }
            Ok(out)
        })
        .await?;
    out.sort_by_key(|(_, r)| r.created_at);
    Ok(out)
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
                let mut woken = vec![r.device_id];
                let scope = system_scope(r.tenant_id);
                if r.state == State::Pending {
                    if store::requests::transition(
                        tx,
                        &scope,
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
                    )? {
                        tell(
                            tx,
                            &ctx2,
                            &scope,
                            &r,
                            format!("Your {} timed out without a decision.", what(&r)),
                            now,
                        )?;
                        audit_for(Event::RequestTimedOut, &r, now).append(tx)?;
                    }
                } else if store::requests::transition(
                    tx,
                    &scope,
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
                )? {
                    if r.kind == "application" {
                        // A one-off approval ends with its window; a rule stays.
                        if r.grant_scope.as_deref() == Some("once") {
                            woken.extend(super::policies::remove_for_request(
                                tx, &ctx2, &scope, &r, now,
                            )?);
                        }
                    } else {
                        commands::enqueue(
                            tx,
                            &ctx2.crypto,
                            &scope,
                            r.device_id,
                            &Action::RevokeAdmin {
                                account: r.account.clone(),
                            },
                            DEFAULT_TTL_MS,
                            now,
                        )?;
                    }
                    audit_for(Event::RequestExpired, &r, now)
                        .details(json!({"account": r.account}))
                        .append(tx)?;
                }
                Ok(woken)
            })
            .await;
        match res {
            Ok(woken) => {
                super::policies::wake(ctx, woken);
                done += 1;
            }
            Err(e) => tracing::error!(error = %e, "request sweep"),
        }
    }
    Ok(done)
}

/// Auto-approval rules of a tenant (`policies.view`).
pub async fn rules_of(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<Vec<rules::AutoRule>> {
    let scope = p.scope(t, Permission::PoliciesView)?;
    ctx.db
        .read(move |r| store::requests::rules(r, &scope))
        .await
}

/// What an admin sets for a rule; times of day as `HH:MM` in the tenant's time zone.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    pub max_minutes: i64,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

fn minute_of(field: &str, v: &Option<String>) -> Result<Option<u32>> {
    let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || Error::validation(field, "must be a time of day like 08:30");
    let (h, m) = v.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(Some(h * 60 + m))
}

pub async fn create_rule(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    n: NewRule,
    origin: &Origin,
) -> Result<rules::AutoRule> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let name = crate::model::tenants::parse_name("name", &n.name)?;
    let max = rules::check_minutes("max_minutes", n.max_minutes, t.settings.jit_max_minutes)?;
    let (from, to) = (minute_of("from", &n.from)?, minute_of("to", &n.to)?);
    if from.is_some() != to.is_some() {
        return Err(Error::validation(
            "to",
            "give both ends of the time window, or neither",
        ));
    }
    let device_id = match n.device_id.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            let id = DeviceId::parse(d)
                .ok_or_else(|| Error::validation("device_id", "unknown workstation"))?;
            ctx.db
                .read(move |r| store::devices::get(r, &scope, id))
                .await
                .map_err(|_| Error::validation("device_id", "unknown workstation"))?;
            Some(id.to_string())
        }
        None => None,
    };
    let rule = rules::AutoRule {
        id: format!("rule-{}", uuid::Uuid::now_v7().simple()),
        name,
        account: n
            .account
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        device_id,
        max_minutes: max,
        from_minute: from,
        to_minute: to,
    };
    let (p2, o, r2) = (p.clone(), origin.clone(), rule.clone());
    ctx.db
        .write(move |tx| {
            store::requests::insert_rule(tx, &scope, &r2, now)?;
            Audit::new(Event::AutoRuleCreated, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("auto_rule", &r2.id)
                .details(serde_json::to_value(&r2)?)
                .append(tx)?;
            Ok(())
        })
        .await?;
    Ok(rule)
}

pub async fn delete_rule(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    p.require_fresh_mfa(now)?;
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::requests::delete_rule(tx, &scope, &id)?;
            Audit::new(Event::AutoRuleDeleted, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("auto_rule", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}

/// The tenant's endpoint users (`users.view`): who asked for rights from which workstation.
pub async fn endpoint_users(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
) -> Result<Vec<store::requests::EndpointUser>> {
    let scope = p.scope(t, Permission::UsersView)?;
    ctx.db
        .read(move |r| store::requests::endpoint_users(r, &scope))
        .await
}

/// Links an endpoint user to a user of the same tenant, or unlinks it (`users.manage`,
/// audited). A linked person can never approve that account's requests.
pub async fn link_endpoint_user(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    id: &str,
    user: Option<&str>,
    origin: &Origin,
) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::UsersManage)?;
    // Changing who an account belongs to decides who may approve its requests (JIT-01).
    p.require_fresh_mfa(now)?;
    let user = match user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(
            crate::ids::UserId::parse(u)
                .ok_or_else(|| Error::validation("user_id", "unknown user of this tenant"))?,
        ),
        None => None,
    };
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            // The endpoint user first, then the person: a foreign id of either is NotFound,
            // answered 404 and audited like any other (AZ-02); the rollback undoes the link.
            let uid = user.map(|u| u.to_string());
            // A person never changes the link that identifies them: someone else must.
            let current = store::requests::linked_user(&tx.reader(), &id)?;
            if current.as_deref() == Some(p2.user_id.to_string().as_str()) && uid != current {
                return Err(Error::Forbidden(
                    "this account is linked to you: someone else must change that link".into(),
                ));
            }
            store::requests::link_endpoint_user(tx, &scope, &id, uid.as_deref(), now)?;
            let email = match user {
                Some(u) => Some(store::users::get(&tx.reader(), &scope, u)?.email),
                None => None,
            };
            Audit::new(Event::EndpointUserLinked, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("endpoint_user", &id)
                .details(json!({"user_id": uid, "email": email}))
                .append(tx)?;
            Ok(())
        })
        .await
}
