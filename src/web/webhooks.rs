//! Notifications of a tenant: webhooks (generic JSON, Slack, Teams) and their delivery log.

use actix_web::{HttpResponse, web};
use maud::html;

use super::error::WebError;
use super::home::{fragment, html_response};
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::error::Error;
use crate::http::AppState;
use crate::model::tenants::TenantKind;
use crate::model::webhooks::DeliveryState;
use crate::model::webhooks::Format;
use crate::service;

pub async fn webhooks_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let ctx = &state.ctx;
    let t = cu.tenant(&state, &slug).await?;
    let (hooks, deliveries) = service::webhooks::list(ctx, &cu.principal, &t).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::SettingsManage));
    let action = format!("/t/{}/webhooks", t.slug);
    let (now, zone) = (state.ctx.clock.now(), cu.zone(Some(&t)));
    let name_of = |id: &str| {
        hooks
            .iter()
            .find(|h| h.id == id)
            .map(|h| h.name.clone())
            .unwrap_or_default()
    };
    let content = html! {
        main {
            h1 { "Notifications" }
            p.muted {
                "Approvers see new requests in the portal (the live queue and the badge) and by email when the appliance has an SMTP server. "
                "Webhooks post the events they hear (new requests, decisions, ends, failed grants) as JSON signed with HMAC-SHA-256, each with the request's id and ticket: header "
                code { "X-Hourglass-Signature: sha256=HEX" } " over " code { "X-Hourglass-Timestamp" } " + " code { "." } " + body. "
                "Failed deliveries are retried after 30 s, 2 min, 10 min, 1 h and 6 h."
                @if t.kind == TenantKind::Msp { " Webhooks of the MSP tenant hear about requests in every tenant." }
            }
            (webhooks_table(&cu, &t, &hooks, can, now, &zone, false))
            div #webhooks-result {}
            @if can {
                form.stack.card #new-webhook method="post" action=(action) hx-post=(action) hx-target="#webhooks-result" hx-swap="afterbegin" data-reset-on-success {
                    h2 { "New webhook" }
                    div #new-webhook-error {}
                    (ui::csrf_input(&cu.csrf))
                    (ui::field("Name", "name", "text", "", None))
                    (ui::field("URL", "url", "url", "", None))
                    label { "Format" select name="format" {
                        @for f in Format::ALL { option value=(f.as_str()) { (f.label()) } }
                    } }
                    fieldset.events {
                        legend { "Events it hears" }
                        @for (e, label) in crate::model::webhooks::EVENTS {
                            label { input type="checkbox" name="event" value=(e) checked; " " (label) " " code.muted { (e) } }
                        }
                    }
                    button type="submit" { "Add webhook" }
                }
            }
            h2 { "Delivery log" }
            div.table-wrap tabindex="0" { table #deliveries-table {
                thead { tr { th { "When" } th { "Webhook" } th { "Event" } th { "State" } th { "Attempts" } th { "Last answer" } th { "Next try" } } }
                tbody {
                    @if deliveries.is_empty() { tr { td colspan="7" { span.muted { "Nothing sent yet." } } } }
                    @for d in &deliveries {
                        tr.delivery data-state=(d.state.as_str()) {
                            td { (super::fmt::when(d.created_at, now, &zone)) }
                            td { (name_of(&d.webhook_id)) }
                            td { code { (d.event) } }
                            td { (d.state.as_str()) }
                            td { (d.attempts) }
                            td { @if let Some(s) = d.last_status { "HTTP " (s) } @if let Some(e) = &d.last_error { " " span.muted { (e) } } }
                            td { @if d.state == DeliveryState::Pending { (super::fmt::when(d.next_attempt_at, now, &zone)) } }
                        }
                    }
                }
            } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/settings",
        "Notifications",
        content,
    )))
}

/// The webhooks list; `oob` redraws it in place after an addition.
fn webhooks_table(
    cu: &CurrentUser,
    t: &crate::model::tenants::Tenant,
    hooks: &[crate::model::webhooks::Webhook],
    can: bool,
    now: crate::clock::Timestamp,
    zone: &str,
    oob: bool,
) -> maud::Markup {
    let action = format!("/t/{}/webhooks", t.slug);
    html! {
        div.table-wrap #webhooks-list tabindex="0" hx-swap-oob=[oob.then_some("true")] { table #webhooks-table {
            thead { tr { th { "Name" } th { "Format" } th { "Host" } th { "Events" } th { "Added" } th { span.sr-only { "Actions" } } } }
            tbody {
                @if hooks.is_empty() { tr { td.empty colspan="6" { "No webhooks yet: add one below to tell a chat channel or a ticketing system about new requests." } } }
                @for h in hooks {
                    tr {
                        td { (h.name) }
                        td { (h.format.label()) }
                        td { code { (h.host) } }
                        td.events { @for e in &h.events { code { (e) } " " } }
                        td { (super::fmt::when(h.created_at, now, zone)) }
                        td { @if can {
                            @let url = format!("{action}/{}/delete", h.id);
                            form.inline method="post" action=(url) hx-post=(url) hx-confirm="Delete this webhook and its delivery log?" {
                                (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes";
                                button.secondary type="submit" { "Delete" }
                            }
                        } }
                    }
                }
            }
        } }
    }
}

pub async fn create(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let mut n = service::webhooks::NewWebhook {
        name: String::new(),
        url: String::new(),
        format: None,
        events: Vec::new(),
    };
    // The event checkboxes repeat one name, which a struct form cannot hold.
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "name" => n.name = v,
            "url" => n.url = v,
            "format" => n.format = Some(v),
            "event" => n.events.push(v),
            "csrf_token" => {}
            other => return Err(WebError(Error::validation(other, "unknown field"))),
        }
    }
    match service::webhooks::create(&state.ctx, &cu.principal, &t, n, &cu.origin).await {
        Ok((w, secret)) => {
            let (hooks, _) = service::webhooks::list(&state.ctx, &cu.principal, &t).await?;
            let (now, zone) = (state.ctx.clock.now(), cu.zone(Some(&t)));
            Ok(fragment(
                html! {
                    div.flash.info.webhook-secret {
                        p { "Webhook " strong { (w.name) } " added. Its signing secret is shown only now; give it to the receiver:" }
                        p { code.secret { (secret) } }
                    }
                    (webhooks_table(&cu, &t, &hooks, true, now, &zone, true))
                },
                true,
            ))
        }
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "new-webhook-error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(WebError::from(e)),
    }
}

pub async fn delete(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    form.confirmed("the deletion")?;
    service::webhooks::delete(&state.ctx, &cu.principal, &t, &id, &cu.origin).await?;
    if super::headers::is_htmx() {
        let page = webhooks_page(state, cu, web::Path::from(slug)).await?;
        return Ok(super::home::section(
            page,
            "webhooks-list",
            "hg-webhooks-changed",
            "Webhook deleted.",
        ));
    }
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/webhooks", t.slug),
        None,
    ))
}
