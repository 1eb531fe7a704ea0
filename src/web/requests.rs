//! JIT requests in the portal: a live queue (htmx polling), approve with a duration, deny
//! with a reason, active sessions with revoke, and history.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use super::users::denied;
use crate::app::AppState;
use crate::authz::Permission;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::ids::RequestId;
use crate::model::requests::{Grant, State};
use crate::model::tenants::Tenant;
use crate::service;
use crate::service::requests::Filter;
use crate::store::requests::Request;

pub const QUEUE_ID: &str = "request-queue";

/// A pending request's row: requester, device, duration, justification, ticket and, for
/// approvers, approve (duration picker) and deny (reason). Inputs keep what was typed across
/// the queue's refreshes (`hx-preserve`).
/// How a queue is drawn: for approvers or viewers, in one tenant or across tenants.
struct View<'a> {
    can: bool,
    csrf: &'a str,
    now: Timestamp,
    /// Across tenants: a tenant column, and decisions come back to `/requests`.
    across: bool,
}

fn pending_row(t: &Tenant, r: &Request, parent: Option<&Request>, v: &View<'_>) -> Markup {
    let (can, csrf, now, show_tenant) = (v.can, v.csrf, v.now, v.across);
    let back = if v.across { "all" } else { "tenant" };
    let base = format!("/t/{}/requests/{}", t.slug, r.id);
    html! {
        tr.request data-request=(r.id) {
            @if show_tenant { td { a href=(format!("/t/{}/requests", t.slug)) { (t.name) } } }
            td { code { (r.account) } }
            td { (r.hostname) }
            td {
                (r.minutes_requested) " min"
                @if r.kind == "extension" {
                    br; span.warn.extension-of { "Extension of the running session"
                        @if let Some(p) = parent { " (" (left(p, now)) " left)" } }
                }
                @if let Some(a) = &r.app { br; (app_cell(a)) }
            }
            td { (r.justification) }
            td { (r.ticket.clone().unwrap_or_default()) }
            td {
                @if can {
                    form.inline.approve method="post" action=(format!("{base}/approve")) {
                        (ui::csrf_input(csrf)) input type="hidden" name="back" value=(back);
                        input id=(format!("minutes-{}", r.id)) hx-preserve type="number" name="duration_minutes" value=(r.minutes_requested.min(t.settings.jit_max_minutes)) min="5" max=(t.settings.jit_max_minutes) aria-label="Minutes";
                        @if r.kind == "application" {
                            select id=(format!("grant-{}", r.id)) hx-preserve name="grant" aria-label="Approve as" {
                                @for g in Grant::ALL { option value=(g.as_str()) { (g.label()) } }
                            }
                        }
                        button type="submit" { "Approve" }
                    }
                    form.inline.deny method="post" action=(format!("{base}/deny")) {
                        (ui::csrf_input(csrf)) input type="hidden" name="back" value=(back);
                        input id=(format!("reason-{}", r.id)) hx-preserve type="text" name="reason" placeholder="Reason" required aria-label="Reason";
                        button.secondary type="submit" { "Deny" }
                    }
                }
            }
        }
    }
}

/// The live part of a tenant's page, re-fetched every 2 s: the queue and the active sessions
/// with their time left.
fn queue(t: &Tenant, rs: &[Request], v: &View<'_>) -> Markup {
    let pending: Vec<_> = rs.iter().filter(|r| r.state == State::Pending).collect();
    html! {
        h2 { "Waiting for a decision" }
        @if pending.is_empty() { p.muted { "No request is waiting." } }
        @else {
            div.table-wrap { table.queue {
                thead { tr { th { "Requester" } th { "Workstation" } th { "Asked" } th { "Justification" } th { "Ticket" } th {} } }
                tbody hx-disable {
                    @for r in pending {
                        @let parent = r.parent_id.and_then(|p| rs.iter().find(|x| x.id == p));
                        (pending_row(t, r, parent, v))
                    }
                }
            } }
        }
        h2 { "Active sessions" }
        div.table-wrap { table.sessions { thead { tr { th { "User" } th { "Workstation" } th { "Time left" } th { "Ticket" } th {} } }
            tbody { @for r in rs.iter().filter(|r| r.state == State::Approved && r.kind != "extension") { tr {
                td { code { (r.account) } } td { (r.hostname) @if let Some(a) = &r.app { br; (app_cell(a)) } }
                td.countdown { (left(r, v.now)) }
                td { (r.ticket.clone().unwrap_or_default()) }
                td { @if v.can {
                    @let url = format!("/t/{}/requests/{}/revoke", t.slug, r.id);
                    form.inline method="post" action=(url) hx-post=(url) hx-confirm="Revoke this session? The user loses administrator rights and is logged off." {
                        (ui::csrf_input(v.csrf)) input type="hidden" name="confirm" value="yes";
                        button.danger type="submit" { "Revoke" } }
                } }
            } } } } }
    }
}

/// What an application request asks to run: the program, its package and whether dpkg
/// vouches for it, and the start of its SHA-256.
fn app_cell(a: &crate::model::policies::App) -> Markup {
    html! {
        span.app {
            "Run " code { (a.path) }
            @if !a.product.is_empty() { " (" (a.product) @if !a.vendor.is_empty() { ", " (a.vendor) } ")" }
            @if a.verified { " · verified by " (a.signer) } @else { " · not verified" }
            " · sha256 " code title=(a.sha256) { (a.sha256.get(..12).unwrap_or(&a.sha256)) "…" }
        }
    }
}

fn left(r: &Request, now: Timestamp) -> String {
    let ms = r
        .expires_at
        .map(|e| e.millis() - now.millis())
        .unwrap_or(0)
        .max(0);
    format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
}

fn can_approve(cu: &CurrentUser, t: &Tenant) -> bool {
    cu.principal
        .permissions_in(t)
        .is_some_and(|p| p.contains(Permission::RequestsApprove))
}

/// History filters from the page's query string.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    who: Option<String>,
}

pub async fn requests_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, WebError> {
    let t = service::tenants::resolve(&state.ctx, &cu.principal, &slug, &cu.origin).await?;
    let ctx = &state.ctx;
    let open = denied(
        &state,
        &cu,
        &t,
        service::requests::list(ctx, &cu.principal, &t, Filter::default()).await,
    )
    .await?;
    let q = q.into_inner();
    let f = Filter {
        state: q.state.clone().filter(|s| !s.is_empty()),
        who: q
            .who
            .clone()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty()),
    };
    let history = denied(
        &state,
        &cu,
        &t,
        service::requests::list(ctx, &cu.principal, &t, f).await,
    )
    .await?;
    let v = View {
        can: can_approve(&cu, &t),
        csrf: &cu.csrf,
        now: ctx.clock.now(),
        across: false,
    };
    let content = html! {
        main {
            h1 { "Requests" }
            p.muted { a href=(format!("/t/{}/auto-approval", t.slug)) { "Auto-approval rules" } " · " a href=(format!("/t/{}/webhooks", t.slug)) { "Notifications" } }
            div id=(QUEUE_ID) hx-get=(format!("/t/{}/requests/queue", t.slug)) hx-trigger="every 2s" hx-swap="innerHTML" {
                (queue(&t, &open, &v))
            }
            h2 { "History" }
            form.inline.filters method="get" action=(format!("/t/{}/requests", t.slug)) {
                label { "State " select name="state" {
                    option value="" { "any" }
                    @for st in State::ALL { option value=(st.as_str()) selected[q.state.as_deref() == Some(st.as_str())] { (st.as_str()) } }
                } }
                label { "Account, workstation or ticket " input type="text" name="who" value=(q.who.clone().unwrap_or_default()); }
                button.secondary type="submit" { "Filter" }
            }
            div.table-wrap { table.history { thead { tr { th { "When" } th { "User" } th { "Workstation" } th { "Kind" } th { "Minutes" } th { "State" } th { "Decided by" } th { "Reason" } th { "Ticket" } } }
                tbody hx-disable { @for r in history.iter().filter(|r| !r.state.is_open() || f_is_set(&q)).take(100) { tr {
                    td { (r.created_at.rfc3339()) } td { code { (r.account) } } td { (r.hostname) } td { (r.kind) }
                    td { (r.minutes_approved.unwrap_or(r.minutes_requested)) } td { (r.state.as_str()) }
                    td { @if let Some(rule) = &r.decided_by_rule { "rule " code { (rule) } } @else if r.decided_by.is_some() { "a person" } }
                    td { (r.reason.clone().unwrap_or_default()) } td { (r.ticket.clone().unwrap_or_default()) }
                } } } } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/requests",
        "Requests",
        content,
    )))
}

/// Without a filter the history shows finished requests; with one, everything that matches.
fn f_is_set(q: &HistoryQuery) -> bool {
    [&q.state, &q.who]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
}

/// The queue fragment the page polls; new requests appear without a reload.
pub async fn queue_fragment(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = service::tenants::resolve(&state.ctx, &cu.principal, &slug, &cu.origin).await?;
    let rs = denied(
        &state,
        &cu,
        &t,
        service::requests::list(&state.ctx, &cu.principal, &t, Filter::default()).await,
    )
    .await?;
    let v = View {
        can: can_approve(&cu, &t),
        csrf: &cu.csrf,
        now: state.ctx.clock.now(),
        across: false,
    };
    Ok(html_response(queue(&t, &rs, &v)))
}

fn across_queue(cu: &CurrentUser, rows: &[(Tenant, Request)], now: Timestamp) -> Markup {
    html! {
        @if rows.is_empty() { p.muted { "No request is waiting in any of your tenants." } }
        @else {
            div.table-wrap { table.queue {
                thead { tr { th { "Tenant" } th { "Requester" } th { "Workstation" } th { "Asked" } th { "Justification" } th { "Ticket" } th {} } }
                tbody hx-disable {
                    @for (t, r) in rows {
                        @let v = View { can: can_approve(cu, t), csrf: &cu.csrf, now, across: true };
                        (pending_row(t, r, None, &v))
                    }
                }
            } }
        }
    }
}

/// `/requests`: the pending requests of every tenant the person may see, for MSP staff.
pub async fn across_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let rows = service::requests::pending_across(&state.ctx, &cu.principal, &cu.tenants).await?;
    let content = html! {
        main {
            h1 { "Requests in all tenants" }
            div id=(QUEUE_ID) hx-get="/requests/queue" hx-trigger="every 2s" hx-swap="innerHTML" {
                (across_queue(&cu, &rows, state.ctx.clock.now()))
            }
        }
    };
    Ok(html_response(nav::page(
        &cu, None, "requests", "Requests", content,
    )))
}

pub async fn across_fragment(
    state: web::Data<AppState>,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let rows = service::requests::pending_across(&state.ctx, &cu.principal, &cu.tenants).await?;
    Ok(html_response(across_queue(
        &cu,
        &rows,
        state.ctx.clock.now(),
    )))
}

/// The navigation's badge: how many requests wait in the person's tenants.
pub async fn badge(state: web::Data<AppState>, cu: CurrentUser) -> Result<HttpResponse, WebError> {
    let counts = service::requests::counts(&state.ctx, &cu.principal, &cu.tenants).await?;
    let pending: i64 = counts.iter().map(|c| c.1).sum();
    Ok(html_response(html! {
        @if pending > 0 {
            a.badge.pending-badge href="/requests" title="Requests waiting for a decision" { (pending) " waiting" }
        }
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionForm {
    #[serde(default)]
    duration_minutes: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Application requests: approve `once` or as a rule (`user`, `device`, `tenant`).
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    confirm: Option<String>,
    /// Where to return: `all` (the cross-tenant queue) or the tenant's page.
    #[serde(default)]
    back: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn decide(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, WebError> {
    let (slug, id, verb) = path.into_inner();
    let t = service::tenants::resolve(&state.ctx, &cu.principal, &slug, &cu.origin).await?;
    let Some(id) = RequestId::parse(&id) else {
        return denied(&state, &cu, &t, Err(Error::NotFound)).await;
    };
    let ctx = &state.ctx;
    let r = match verb.as_str() {
        "approve" => {
            let minutes = match form
                .duration_minutes
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
            {
                None => None,
                Some(m) => Some(m.parse::<i64>().map_err(|_| {
                    WebError(Error::validation(
                        "duration_minutes",
                        "must be a number of minutes",
                    ))
                })?),
            };
            let grant = Grant::parse(form.grant.as_deref().unwrap_or("once"))?;
            service::requests::approve(ctx, &cu.principal, &t, id, minutes, grant, &cu.origin).await
        }
        "deny" => {
            service::requests::deny(
                ctx,
                &cu.principal,
                &t,
                id,
                form.reason.as_deref().unwrap_or(""),
                &cu.origin,
            )
            .await
        }
        "revoke" => {
            if form.confirm.as_deref() != Some("yes") {
                return Err(WebError(Error::validation(
                    "confirm",
                    "confirm the revocation (confirm=yes)",
                )));
            }
            service::requests::revoke(ctx, &cu.principal, &t, id, &cu.origin).await
        }
        _ => return Err(WebError(Error::NotFound)),
    };
    denied(&state, &cu, &t, r).await?;
    let to = match form.back.as_deref() {
        Some("all") => "/requests".to_string(),
        _ => format!("/t/{}/requests", t.slug),
    };
    Ok(super::auth::redirect(&req, &to, None))
}
