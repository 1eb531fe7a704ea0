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
use crate::authz::Permission;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::http::AppState;
use crate::ids::RequestId;
use crate::model::requests::Request;
use crate::model::requests::{Grant, Kind, State};
use crate::model::tenants::Tenant;
use crate::service;
use crate::service::requests::Filter;

pub const QUEUE_ID: &str = "request-queue";

/// How a queue is drawn: for approvers or viewers, in one tenant or across tenants.
struct View<'a> {
    can: bool,
    csrf: &'a str,
    now: Timestamp,
    zone: &'a str,
    /// Across tenants: a tenant column, and decisions come back to `/requests`.
    across: bool,
}

/// A pending request's row: requester, device, duration, justification, ticket and, for
/// approvers, approve (duration picker) and deny (reason). Inputs keep what was typed across
/// the queue's refreshes (`hx-preserve`). Cells carry their labels for the phone layout.
fn pending_row(t: &Tenant, r: &Request, parent: Option<&Request>, v: &View<'_>) -> Markup {
    let (can, csrf, now, show_tenant) = (v.can, v.csrf, v.now, v.across);
    let back = if v.across { "all" } else { "tenant" };
    let base = format!("/t/{}/requests/{}", t.slug, r.id);
    html! {
        tr.request data-request=(r.id) {
            @if show_tenant { td data-label="Tenant" hx-disable { a href=(format!("/t/{}/requests", t.slug)) { (t.name) } } }
            td data-label="Requester" hx-disable { code { (r.account) } }
            td data-label="Workstation" hx-disable { (r.hostname) }
            td data-label="Asked" hx-disable {
                (r.minutes_requested) " min, " (super::fmt::when(r.created_at, now, v.zone))
                @if r.kind == Kind::Extension {
                    br; span.warn.extension-of { "Extension of the running session"
                        @if let Some(p) = parent { " (" (left(p, now)) " left)" } }
                }
                @if let Some(a) = &r.app { br; (app_cell(a)) }
            }
            td data-label="Justification" hx-disable { (r.justification) }
            td data-label="Ticket" hx-disable { (r.ticket.clone().unwrap_or_default()) }
            td {
                @if can {
                    @let approve = format!("{base}/approve");
                    form.inline.approve method="post" action=(approve) hx-post=(approve) hx-target=(format!("#{QUEUE_ID}")) {
                        (ui::csrf_input(csrf)) input type="hidden" name="back" value=(back);
                        label.sr-only for=(format!("minutes-{}", r.id)) { "Minutes" }
                        input id=(format!("minutes-{}", r.id)) hx-preserve type="number" name="duration_minutes" value=(r.minutes_requested.min(t.settings.jit_max_minutes)) min="5" max=(t.settings.jit_max_minutes) aria-label="Minutes" title="Minutes to grant";
                        @if r.kind == Kind::Application {
                            select id=(format!("grant-{}", r.id)) hx-preserve name="grant" aria-label="Approve as" {
                                @for g in Grant::ALL { option value=(g.as_str()) { (g.label()) } }
                            }
                        }
                        button type="submit" { "Approve" }
                    }
                    @let deny = format!("{base}/deny");
                    form.inline.deny method="post" action=(deny) hx-post=(deny) hx-target=(format!("#{QUEUE_ID}")) {
                        (ui::csrf_input(csrf)) input type="hidden" name="back" value=(back);
                        input id=(format!("reason-{}", r.id)) hx-preserve type="text" name="reason" placeholder="Reason" required aria-label="Reason for denying";
                        button.secondary type="submit" { "Deny" }
                    }
                }
            }
        }
    }
}

/// The live part of a tenant's page: the queue, the running sessions with their time left,
/// and grants the workstation could not carry out. Re-fetched every 2 s, redrawn only when
/// it changed (`X-Fragment-Version`).
fn queue(t: &Tenant, rs: &[Request], v: &View<'_>) -> Markup {
    let pending: Vec<_> = rs.iter().filter(|r| r.state == State::Pending).collect();
    let running: Vec<_> = rs
        .iter()
        .filter(|r| r.state == State::Approved && r.kind != Kind::Extension)
        .collect();
    let failed: Vec<_> = rs
        .iter()
        .filter(|r| {
            r.state == State::Failed
                && r.ended_at
                    .is_some_and(|e| v.now.millis() - e.millis() < 24 * 3_600_000)
        })
        .collect();
    html! {
        h2 { "Waiting for a decision" }
        @if pending.is_empty() { p.muted.empty-queue { "No request is waiting. New requests appear here by themselves." } }
        @else {
            div.table-wrap tabindex="0" { table.queue {
                thead { tr { th { "Requester" } th { "Workstation" } th { "Asked" } th { "Justification" } th { "Ticket" } th { span.sr-only { "Decision" } } } }
                // Cells with what workstations sent are hx-disable'd; the decision forms are htmx.
                tbody {
                    @for r in pending {
                        @let parent = r.parent_id.and_then(|p| rs.iter().find(|x| x.id == p));
                        (pending_row(t, r, parent, v))
                    }
                }
            } }
        }
        @if !failed.is_empty() {
            h2 { "Could not be carried out" }
            div.table-wrap tabindex="0" { table.failed { thead { tr { th { "User" } th { "Workstation" } th { "When" } th { "The workstation said" } } }
                tbody hx-disable { @for r in &failed { tr.failed-grant data-request=(r.id) {
                    td { code { (r.account) } } td { (r.hostname) }
                    td { (super::fmt::when_opt(r.ended_at, v.now, v.zone)) }
                    td.bad { (r.failure.clone().unwrap_or_default()) }
                } } } } }
        }
        h2 { "Active sessions" }
        div.table-wrap tabindex="0" { table.sessions { thead { tr { th { "User" } th { "Workstation" } th { "Time left" } th { "Ticket" } th { span.sr-only { "Actions" } } } }
            tbody {
                @if running.is_empty() { tr { td.empty colspan="5" { "No session is running." } } }
                @for r in &running { tr.session data-request=(r.id) {
                td hx-disable { code { (r.account) } } td hx-disable { (r.hostname) @if let Some(a) = &r.app { br; (app_cell(a)) } }
                @if r.kind == Kind::Admin && r.granted_at.is_none() {
                    td.waiting { "waiting for the workstation to confirm" }
                } @else {
                    td.countdown { span data-seconds-left=(seconds_left(r, v.now)) { (left(r, v.now)) } }
                }
                td hx-disable { (r.ticket.clone().unwrap_or_default()) }
                td { @if v.can {
                    @let url = format!("/t/{}/requests/{}/revoke", t.slug, r.id);
                    form.inline method="post" action=(url) hx-post=(url) hx-target=(format!("#{QUEUE_ID}")) hx-confirm="Revoke this session? The user loses administrator rights and is logged off." {
                        (ui::csrf_input(v.csrf)) input type="hidden" name="confirm" value="yes";
                        button.danger type="submit" { "Revoke" } }
                } }
            } } } } }
    }
}

/// What a queue shows changes only with these: a poll that finds them equal draws nothing.
fn queue_version(rs: &[Request], now: Timestamp) -> String {
    let mut h = String::new();
    for r in rs
        .iter()
        .filter(|r| r.state.is_open() || r.state == State::Failed)
    {
        h.push_str(&format!(
            "{}:{}:{}:{};",
            r.id,
            r.version,
            r.granted_at.is_some(),
            r.expires_at.map(|e| e.millis()).unwrap_or(0)
        ));
    }
    // Relative times ("3 min ago") move on: redraw at least once a minute.
    h.push_str(&(now.millis() / 60_000).to_string());
    crate::crypto::sha256_hex(h.as_bytes())[..16].to_string()
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

fn seconds_left(r: &Request, now: Timestamp) -> i64 {
    r.expires_at
        .map(|e| (e.millis() - now.millis()) / 1000)
        .unwrap_or(0)
        .max(0)
}

fn left(r: &Request, now: Timestamp) -> String {
    let s = seconds_left(r, now);
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// A request's kind in words.
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
    let t = cu.tenant(&state, &slug).await?;
    let ctx = &state.ctx;
    let open = service::requests::list(ctx, &cu.principal, &t, Filter::default()).await?;
    let q = q.into_inner();
    let f = Filter {
        state: q.state.clone().filter(|s| !s.is_empty()),
        who: q
            .who
            .clone()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty()),
    };
    let history = service::requests::list(ctx, &cu.principal, &t, f).await?;
    let zone = cu.zone(Some(&t));
    let v = View {
        can: can_approve(&cu, &t),
        csrf: &cu.csrf,
        now: ctx.clock.now(),
        zone: &zone,
        across: false,
    };
    let shown: Vec<&Request> = history
        .iter()
        .filter(|r| !r.state.is_open() || f_is_set(&q))
        .take(100)
        .collect();
    let names = service::audit::labels(
        ctx,
        shown
            .iter()
            .flat_map(|r| {
                [
                    r.decided_by.map(|u| u.to_string()),
                    r.decided_by_rule.clone(),
                ]
            })
            .flatten()
            .collect(),
    )
    .await?;
    let content = html! {
        main {
            h1 { "Requests" }
            p.muted { a href=(format!("/t/{}/auto-approval", t.slug)) { "Auto-approval rules" } " · " a href=(format!("/t/{}/webhooks", t.slug)) { "Notifications" } }
            div id=(QUEUE_ID) hx-get=(format!("/t/{}/requests/queue", t.slug)) hx-trigger="every 2s" hx-swap="innerHTML"
                data-fragment-version=(queue_version(&open, v.now)) {
                (queue(&t, &open, &v))
            }
            h2 { "History" }
            (history_section(&t, &q, &shown, &names, &v))
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

/// The history: the filter and the table. After a decision in the queue (`hg-requests-changed`)
/// it fetches the page again and swaps in only itself.
fn history_section(
    t: &Tenant,
    q: &HistoryQuery,
    shown: &[&Request],
    names: &std::collections::HashMap<String, String>,
    v: &View<'_>,
) -> Markup {
    let here = format!(
        "/t/{}/requests?state={}&who={}",
        t.slug,
        enc(q.state.as_deref().unwrap_or("")),
        enc(q.who.as_deref().unwrap_or(""))
    );
    let zone = v.zone;
    html! {
        div #request-history hx-get=(here) hx-trigger="hg-requests-changed from:body" hx-select="#request-history" hx-swap="outerHTML" {
            form.inline.filters method="get" action=(format!("/t/{}/requests", t.slug)) {
                label { "State " select name="state" {
                    option value="" { "any" }
                    @for st in State::ALL { option value=(st.as_str()) selected[q.state.as_deref() == Some(st.as_str())] { (st.label()) } }
                } }
                label { "Account, workstation or ticket " input type="text" name="who" value=(q.who.clone().unwrap_or_default()); }
                button.secondary type="submit" { "Filter" }
            }
            div.table-wrap tabindex="0" { table.history { thead { tr { th { "When" } th { "User" } th { "Workstation" } th { "Kind" } th { "Minutes" } th { "State" } th { "Decided by" } th { "Reason" } th { "Ticket" } } }
                tbody hx-disable {
                    @if shown.is_empty() { tr { td.empty colspan="9" { @if f_is_set(q) { "Nothing matches these filters." } @else { "No finished requests yet: decided, ended and expired ones appear here." } } } }
                    @for r in shown { tr {
                    td { (super::fmt::when(r.created_at, v.now, zone)) } td { code { (r.account) } } td { (r.hostname) } td { (r.kind.label()) }
                    td { (r.minutes_approved.unwrap_or(r.minutes_requested)) } td { (r.state.label()) @if let Some(f) = &r.failure { br; span.bad { (f) } } }
                    td { @if let Some(rule) = &r.decided_by_rule { "rule " (names.get(rule).cloned().unwrap_or_else(|| "(deleted)".into())) }
                         @else if let Some(p) = &r.decided_by { (names.get(&p.to_string()).cloned().unwrap_or_else(|| "a person".into())) } }
                    td { (r.reason.clone().unwrap_or_default()) } td { (r.ticket.clone().unwrap_or_default()) }
                } } } } }
        }
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Without a filter the history shows finished requests; with one, everything that matches.
fn f_is_set(q: &HistoryQuery) -> bool {
    [&q.state, &q.who]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
}

/// The queue fragment the page polls; new requests appear without a reload. When nothing
/// changed since the version the page holds, it answers 204 and the page stays as it is
/// (typed text, focus, an open dialog).
pub async fn queue_fragment(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let (version, m) = tenant_queue(&state, &cu, &t).await?;
    Ok(versioned(&req, version, m))
}

/// A tenant's queue as it is now, with its version.
async fn tenant_queue(
    state: &AppState,
    cu: &CurrentUser,
    t: &Tenant,
) -> Result<(String, Markup), WebError> {
    let rs = service::requests::list(&state.ctx, &cu.principal, t, Filter::default()).await?;
    let zone = cu.zone(Some(t));
    let v = View {
        can: can_approve(cu, t),
        csrf: &cu.csrf,
        now: state.ctx.clock.now(),
        zone: &zone,
        across: false,
    };
    Ok((queue_version(&rs, v.now), queue(t, &rs, &v)))
}

/// 204 when the page already shows `version`, else the fragment with its version.
fn versioned(req: &actix_web::HttpRequest, version: String, m: Markup) -> HttpResponse {
    let held = req
        .headers()
        .get("x-fragment-version")
        .and_then(|v| v.to_str().ok());
    if held == Some(version.as_str()) {
        return HttpResponse::NoContent().finish();
    }
    let mut r = html_response(m);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&version) {
        r.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-fragment-version"),
            v,
        );
    }
    r
}

fn across_queue(cu: &CurrentUser, rows: &[(Tenant, Request)], now: Timestamp) -> Markup {
    let zone = cu.zone(None);
    html! {
        @if rows.is_empty() { p.muted.empty-queue { "No request is waiting in any of your tenants. New requests appear here by themselves." } }
        @else {
            div.table-wrap tabindex="0" { table.queue {
                thead { tr { th { "Tenant" } th { "Requester" } th { "Workstation" } th { "Asked" } th { "Justification" } th { "Ticket" } th {} } }
                tbody {
                    @for (t, r) in rows {
                        @let v = View { can: can_approve(cu, t), csrf: &cu.csrf, now, zone: &zone, across: true };
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
    let now = state.ctx.clock.now();
    let version = across_version(&rows, now);
    let content = html! {
        main {
            h1 { "Requests in all tenants" }
            div id=(QUEUE_ID) hx-get="/requests/queue" hx-trigger="every 2s" hx-swap="innerHTML"
                data-fragment-version=(version) {
                (across_queue(&cu, &rows, now))
            }
        }
    };
    Ok(html_response(nav::page(
        &cu, None, "requests", "Requests", content,
    )))
}

pub async fn across_fragment(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let rows = service::requests::pending_across(&state.ctx, &cu.principal, &cu.tenants).await?;
    let now = state.ctx.clock.now();
    Ok(versioned(
        &req,
        across_version(&rows, now),
        across_queue(&cu, &rows, now),
    ))
}

fn across_version(rows: &[(Tenant, Request)], now: Timestamp) -> String {
    let rs: Vec<Request> = rows.iter().map(|(_, r)| r.clone()).collect();
    queue_version(&rs, now)
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
    let t = cu.tenant(&state, &slug).await?;
    let Some(id) = RequestId::parse(&id) else {
        return Err(WebError(Error::NotFound));
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
            super::users::confirmed(&form.confirm, "the revocation")?;
            service::requests::revoke(ctx, &cu.principal, &t, id, &cu.origin).await
        }
        _ => return Err(WebError(Error::NotFound)),
    };
    let r = r?;
    let across = form.back.as_deref() == Some("all");
    if req.headers().contains_key("hx-request") {
        return decided(&state, &cu, &t, &r, &verb, across).await;
    }
    let to = if across {
        "/requests".to_string()
    } else {
        format!("/t/{}/requests", t.slug)
    };
    Ok(super::auth::redirect(&req, &to, None))
}

/// After a decision from the queue (htmx): the queue as it is now, and a notice saying what
/// happened; the history fetches itself again (`hg-requests-changed`).
async fn decided(
    state: &AppState,
    cu: &CurrentUser,
    t: &Tenant,
    r: &Request,
    verb: &str,
    across: bool,
) -> Result<HttpResponse, WebError> {
    let ctx = &state.ctx;
    let now = ctx.clock.now();
    let notice = match verb {
        "approve" => format!(
            "Approved: {} minutes for {} on {}.",
            r.minutes_approved.unwrap_or(r.minutes_requested),
            r.account,
            r.hostname
        ),
        "deny" => format!("Denied: {} on {}.", r.account, r.hostname),
        _ => format!(
            "Revoked: {} on {} loses administrator rights now.",
            r.account, r.hostname
        ),
    };
    let (version, m) = if across {
        let rows = service::requests::pending_across(ctx, &cu.principal, &cu.tenants).await?;
        (across_version(&rows, now), across_queue(cu, &rows, now))
    } else {
        tenant_queue(state, cu, t).await?
    };
    Ok(super::home::updated(
        QUEUE_ID,
        Some(version),
        m,
        "hg-requests-changed",
        &notice,
    ))
}
