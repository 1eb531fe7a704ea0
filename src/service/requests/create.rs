//! A workstation asks (a JIT session, an extension, or one program elevated), and who sees what is waiting.

use super::*;

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
            let (kind, parent) = kind_of(tx, &scope, &ask.kind, &eu)?;
            let app = app_of(tx, &scope, kind, ask.app.as_ref(), &eu)?;
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
            let woken = decide_at_once(tx, &ctx2, &scope, &t, &r, minutes, now)?;
            Ok((store::requests::get(&tx.reader(), &scope, id)?, t, woken))
        })
        .await?;
    let (r, t, woken) = r;
    crate::service::policies::wake(ctx, woken);
    if r.state == State::Pending {
        crate::service::webhooks::kick(ctx);
        crate::service::webhooks::mail_approvers(ctx, &t, &r);
    }
    Ok(r)
}

/// A new pending request: approved at once when an auto-approval rule matches, otherwise
/// announced to the tenant's webhooks. Returns the devices to wake.
fn decide_at_once(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    t: &Tenant,
    r: &Request,
    minutes: u32,
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let minute = zones::minute_of_day(now.millis(), &t.settings.time_zone);
    let device = r.device_id.to_string();
    let rule = store::requests::rules(&tx.reader(), scope)?
        .into_iter()
        .find(|x| x.matches(&r.account, &device, minutes, minute));
    match rule {
        Some(rule) => {
            let a = Approval {
                minutes,
                grant: Grant::Once,
            };
            Ok(approve_in(tx, ctx, scope, r, a, Decider::Rule(&rule.id), now)?.1)
        }
        None => {
            crate::service::webhooks::announce(tx, ctx, t, r, now)?;
            Ok(vec![r.device_id])
        }
    }
}

/// The request's kind; an extension names the running session it extends.
fn kind_of(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    kind: &str,
    eu: &str,
) -> Result<(Kind, Option<RequestId>)> {
    match Kind::parse(kind) {
        Some(Kind::Extension) => {
            let open = store::requests::open_for(&tx.reader(), scope, eu)?
                .filter(|o| o.state == State::Approved);
            let open = open.ok_or_else(|| {
                Error::InvalidState("there is no running session to extend".into())
            })?;
            Ok((Kind::Extension, Some(open.id)))
        }
        Some(k) => Ok((k, None)),
        None => Err(Error::validation(
            "kind",
            "must be admin, extension or application",
        )),
    }
}

/// An application request's program (JSON), checked; only application requests have one,
/// and one person asks for the same program once at a time.
fn app_of(
    tx: &WriteTx<'_>,
    scope: &TenantScope,
    kind: Kind,
    app: Option<&engine::App>,
    eu: &str,
) -> Result<Option<String>> {
    match (kind, app) {
        (Kind::Application, Some(app)) => {
            engine::check_app(app)?;
            engine::check_rule(engine::RuleKind::Hash, &app.sha256).map_err(|_| {
                Error::validation(
                    "sha256",
                    "an application request needs the program's SHA-256",
                )
            })?;
            if let Some(open) = store::requests::pending_app(&tx.reader(), scope, eu, &app.sha256)?
            {
                return Err(Error::Conflict(format!(
                    "You already asked to run this program ({open}); wait for a decision first."
                )));
            }
            Ok(Some(serde_json::to_string(app)?))
        }
        (Kind::Application, None) => Err(Error::validation(
            "app",
            "an application request describes the program",
        )),
        (_, Some(_)) => Err(Error::validation(
            "app",
            "only application requests describe a program",
        )),
        _ => Ok(None),
    }
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
