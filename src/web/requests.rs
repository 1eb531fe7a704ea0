//! JIT requests in the portal: a live queue (htmx polling), approve with a duration, deny
//! with a reason, active sessions with revoke, and history.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::users::denied;
use crate::app::AppState;
use crate::authz::Permission;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::ids::RequestId;
use crate::model::requests::State;
use crate::model::tenants::Tenant;
use crate::service;
use crate::store::requests::Request;

pub const QUEUE_ID: &str = "request-queue";

fn queue(t: &Tenant, rs: &[Request], can_approve: bool, csrf: &str) -> Markup {
    let pending: Vec<_> = rs.iter().filter(|r| r.state == State::Pending).collect();
    html! {
        @if pending.is_empty() { p.muted { "No request is waiting." } }
        @else {
            table.queue {
                thead { tr { th { "Requester" } th { "Workstation" } th { "Asked" } th { "Justification" } th { "Ticket" } th {} } }
                tbody hx-disable {
                    @for r in pending {
                        tr.request data-request=(r.id) {
                            td { code { (r.account) } @if r.kind == "extension" { " " span.warn { "(extension)" } } }
                            td { (r.hostname) }
                            td { (r.minutes_requested) " min" }
                            td { (r.justification) }
                            td { (r.ticket.clone().unwrap_or_default()) }
                            td {
                                @if can_approve {
                                    @let base = format!("/t/{}/requests/{}", t.slug, r.id);
                                    form.inline.approve method="post" action=(format!("{base}/approve")) {
                                        input type="hidden" name="csrf_token" value=(csrf);
                                        input type="number" name="duration_minutes" value=(r.minutes_requested.min(t.settings.jit_max_minutes)) min="5" max=(t.settings.jit_max_minutes) aria-label="Minutes";
                                        button type="submit" { "Approve" }
                                    }
                                    form.inline.deny method="post" action=(format!("{base}/deny")) {
                                        input type="hidden" name="csrf_token" value=(csrf);
                                        input type="text" name="reason" placeholder="Reason" required aria-label="Reason";
                                        button.secondary type="submit" { "Deny" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
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

async fn load(
    state: &AppState,
    cu: &CurrentUser,
    slug: &str,
) -> Result<(Tenant, Vec<Request>), WebError> {
    let t = service::tenants::resolve(&state.ctx, &cu.principal, slug, &cu.origin).await?;
    let rs = denied(
        state,
        cu,
        &t,
        service::requests::list(&state.ctx, &cu.principal, &t, None).await,
    )
    .await?;
    Ok((t, rs))
}

pub async fn requests_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (t, rs) = load(&state, &cu, &slug).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::RequestsApprove));
    let now = state.ctx.clock.now();
    let content = html! {
        main {
            h1 { "Requests" }
            h2 { "Waiting for a decision" }
            div id=(QUEUE_ID) hx-get=(format!("/t/{}/requests/queue", t.slug)) hx-trigger="every 2s" hx-swap="innerHTML" {
                (queue(&t, &rs, can, &cu.csrf))
            }
            h2 { "Active sessions" }
            table { thead { tr { th { "User" } th { "Workstation" } th { "Time left" } th { "Ticket" } th {} } }
                tbody hx-disable { @for r in rs.iter().filter(|r| r.state == State::Approved && r.kind == "admin") { tr {
                    td { code { (r.account) } } td { (r.hostname) } td.countdown { (left(r, now)) } td { (r.ticket.clone().unwrap_or_default()) }
                    td { @if can {
                        form.inline method="post" action=(format!("/t/{}/requests/{}/revoke", t.slug, r.id)) {
                            input type="hidden" name="csrf_token" value=(cu.csrf); input type="hidden" name="confirm" value="yes";
                            button.danger type="submit" { "Revoke" } }
                    } }
                } } } }
            h2 { "History" }
            table { thead { tr { th { "When" } th { "User" } th { "Workstation" } th { "Minutes" } th { "State" } th { "Reason" } } }
                tbody hx-disable { @for r in rs.iter().filter(|r| !r.state.is_open()).take(50) { tr {
                    td { (r.created_at.rfc3339()) } td { code { (r.account) } } td { (r.hostname) }
                    td { (r.minutes_approved.unwrap_or(r.minutes_requested)) } td { (r.state.as_str()) } td { (r.reason.clone().unwrap_or_default()) }
                } } } }
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

/// The queue fragment the page polls; new requests appear without a reload.
pub async fn queue_fragment(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (t, rs) = load(&state, &cu, &slug).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::RequestsApprove));
    Ok(html_response(queue(&t, &rs, can, &cu.csrf)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionForm {
    #[serde(default)]
    duration_minutes: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    confirm: Option<String>,
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
            service::requests::approve(ctx, &cu.principal, &t, id, minutes, &cu.origin).await
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
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/requests", t.slug),
        None,
    ))
}
