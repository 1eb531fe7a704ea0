//! Workstations of a tenant: list with online state, add (enrollment command line), detail
//! with administrators, commands and events, retire.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::error::Error;
use crate::http::AppState;
use crate::ids::DeviceId;
use crate::model::devices::Device;
use crate::model::tenants::Tenant;
use crate::service::{self, devices::NewToken};

fn online_label(ctx: &service::Ctx, d: &Device, now: crate::clock::Timestamp) -> Markup {
    html! {
        @if !d.active { span.muted { "retired" } }
        @else if service::devices::is_online(ctx, d, now) { span.ok { "online" } }
        @else { span.warn { "offline" } }
    }
}

pub async fn devices_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let devices = service::devices::list(&state.ctx, &cu.principal, &t).await?;
    let standing =
        service::standing_admins::report(&state.ctx, &cu.principal, &t, &devices).await?;
    let standing_total: usize = standing.values().map(Vec::len).sum();
    let can_manage = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::DevicesManage));
    let now = state.ctx.clock.now();
    let zone = cu.zone(Some(&t));
    let action = format!("/t/{}/devices/tokens", t.slug);
    let tokens = if can_manage {
        service::devices::tokens(&state.ctx, &cu.principal, &t).await?
    } else {
        Vec::new()
    };
    let content = html! {
        main {
            h1 { "Workstations of " (t.name) }
            p #standing-admins-summary {
                @if standing_total == 0 { "No standing administrators: nobody holds admin rights outside a grant." }
                @else {
                    (standing_total) " standing administrator" @if standing_total != 1 { "s" } " on "
                    (standing.values().filter(|v| !v.is_empty()).count()) " workstation(s), outside any grant. "
                    @if t.settings.remove_standing_admins { "Their removal is ordered (Settings)." }
                    @else { "Settings → Remove standing administrators takes them out." }
                }
            }
            div.table-wrap tabindex="0" { table #devices-table {
                thead { tr { th { "Hostname" } th { "State" } th { "OS" } th { "Agent" } th { "Last seen" } th { "Standing administrators" } } }
                tbody hx-disable {
                    @if devices.is_empty() { tr { td.empty colspan="6" { "No workstation is enrolled yet"
                        @if can_manage { ": create an enrollment command below and run it on the workstation" } "." } } }
                    @for d in &devices {
                        tr {
                            td { a href=(format!("/t/{}/devices/{}", t.slug, d.id)) { (d.hostname) } }
                            td { (online_label(&state.ctx, d, now)) (alert_badge(d)) }
                            td { (d.os) " " (d.os_version) }
                            td { (d.agent_version) }
                            td { (super::fmt::when(d.last_seen_at, now, &zone)) }
                            td.standing-admins { @for a in standing.get(&d.id).into_iter().flatten() { code { (a) } " " } }
                        }
                    }
                }
            } }
            @if can_manage {
                form.stack.card #add-device method="post" action=(action) hx-post=(action) hx-target="#add-device-result" hx-swap="afterbegin" {
                    h2 { "Add device" }
                    p.muted { "Creates an enrollment token and the command to run on the workstation." }
                    div #add-device-error {}
                    (ui::csrf_input(&cu.csrf))
                    (ui::field("Valid for (hours, at most 24)", "hours", "number", "24", None))
                    (ui::field("Number of workstations it may enroll", "uses", "number", "1", None))
                    button type="submit" { "Create enrollment command" }
                    div #add-device-result {}
                }
                (open_tokens(&cu, &t, &tokens, now, &zone, false))
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/devices",
        "Devices",
        content,
    )))
}

/// Enrollment tokens that still enroll; `oob` redraws the list after a new one.
fn open_tokens(
    cu: &CurrentUser,
    t: &Tenant,
    tokens: &[crate::model::devices::EnrollmentToken],
    now: crate::clock::Timestamp,
    zone: &str,
    oob: bool,
) -> Markup {
    let action = format!("/t/{}/devices/tokens", t.slug);
    let open: Vec<_> = tokens
        .iter()
        .filter(|k| k.revoked_at.is_none() && k.uses_left > 0 && k.expires_at > now)
        .collect();
    html! {
        section #open-tokens hx-swap-oob=[oob.then_some("true")] {
            @if !open.is_empty() {
                h2 { "Open enrollment tokens" }
                div #tokens-result {}
                div.table-wrap tabindex="0" { table { thead { tr { th { "Created" } th { "Expires" } th { "Uses left" } th { span.sr-only { "Actions" } } } }
                    tbody { @for k in open { tr {
                        td { (super::fmt::when(k.created_at, now, zone)) } td { (super::fmt::when(k.expires_at, now, zone)) } td { (k.uses_left) }
                        td { form.inline method="post" action=(format!("{action}/{}/revoke", k.id)) hx-post=(format!("{action}/{}/revoke", k.id)) hx-target="#tokens-result" hx-confirm="Revoke this enrollment token?" {
                            (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes"; button.secondary type="submit" { "Revoke" } } }
                    } } } } }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenForm {
    hours: String,
    uses: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

/// Where agents reach the appliance (the enrollment command's `--server`).
pub fn base_url(state: &AppState) -> String {
    state.ctx.links().agent
}

pub async fn create_token(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let num = |f: &str, v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| Error::validation(f, "must be a whole number"))
    };
    let made = match (num("hours", &form.hours), num("uses", &form.uses)) {
        (Ok(hours), Ok(uses)) => {
            service::devices::create_token(
                &state.ctx,
                &cu.principal,
                &t,
                NewToken { hours, uses },
                &base_url(&state),
                &cu.origin,
            )
            .await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match made {
        Ok((tok, _, command)) => {
            let now = state.ctx.clock.now();
            let zone = cu.zone(Some(&t));
            let tokens = service::devices::tokens(&state.ctx, &cu.principal, &t).await?;
            Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
                html! {
                    div.flash.info.enroll-command {
                        p { "Shown once; valid until " (super::fmt::when(tok.expires_at, now, &zone)) ", " (tok.uses_left) " use(s)." }
                        p { "Linux: run this on the workstation as root:" }
                        pre { code.command { (command.linux) } }
                        p { "Windows: deploy hourglass-agent.msi with your RMM (or run this as an administrator):" }
                        pre { code.command.windows-command { (command.windows) } }
                    }
                    (open_tokens(&cu, &t, &tokens, now, &zone, true))
                }
                .into_string(),
            ))
        }
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "add-device-error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(WebError::from(e)),
    }
}

fn device_id(raw: &str) -> Result<DeviceId, WebError> {
    match DeviceId::parse(raw) {
        Some(id) => Ok(id),
        None => Err(WebError(Error::NotFound)),
    }
}

pub async fn detail_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = device_id(&id)?;
    let (d, commands, events) = service::devices::detail(&state.ctx, &cu.principal, &t, id).await?;
    let can_manage = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::DevicesManage));
    let now = state.ctx.clock.now();
    let retire = format!("/t/{}/devices/{}/retire", t.slug, d.id);
    let dismiss = format!("/t/{}/devices/{}/alert/dismiss", t.slug, d.id);
    let logins = service::logins::list(&state.ctx, &cu.principal, &t, Some(id)).await?;
    let history = service::logins::history(&state.ctx, &cu.principal, &t, id).await?;
    // Who revealed what: shown to those who may read the audit log.
    let reveals = service::logins::reveals(&state.ctx, &cu.principal, &t, id)
        .await
        .ok();
    let content = html! {
        main {
            h1 { (d.hostname) }
            @if let (Some(a), Some(at)) = (d.alert, d.alert_at) {
                div.flash.error.tamper-alert #device-alert role="alert" {
                    "Tamper alert: " (a.sentence()) ", " (super::fmt::when(at, now, &cu.zone(Some(&t)))) "."
                    @if can_manage {
                        " "
                        form.inline method="post" action=(dismiss) hx-post=(dismiss) hx-target="#device-alert" hx-swap="outerHTML"
                            hx-confirm="Dismiss this alert? Do so once you know why it was raised; it stays in the audit log." {
                            (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes"; button type="submit" { "Dismiss alert" }
                        }
                    }
                }
            }
            dl.kv {
                dt { "State" } dd { (online_label(&state.ctx, &d, now)) (alert_badge(&d)) }
                dt { "OS" } dd { (d.os) " " (d.os_version) }
                dt { "Agent" } dd { (d.agent_version) }
                dt { "Agent binary (SHA-256)" } dd {
                    @if d.agent_hash.is_empty() { "not reported yet" } @else { code.hash { (d.agent_hash) } }
                }
                dt { "Enrolled" } dd { (super::fmt::when(d.enrolled_at, now, &cu.zone(Some(&t)))) }
                dt { "Last seen" } dd { (super::fmt::when(d.last_seen_at, now, &cu.zone(Some(&t)))) }
                dt { "Local administrators" } dd { @for m in &d.admin_members { code { (m) } " " } }
            }
            (super::logins::device_section(&cu, &t, d.id, d.active, service::devices::is_online(&state.ctx, &d, now), &logins, &history, now))
            @if let Some(r) = &reveals { (super::logins::reveals_table(r, now, &cu.zone(Some(&t)))) }
            h2 { "Recent commands" }
            div.table-wrap tabindex="0" { table { thead { tr { th { "#" } th { "Command" } th { "Issued" } th { "State" } th { "Details" } } }
                tbody hx-disable { @for c in &commands { tr { td { (c.seq) } td { code { (c.kind.as_str()) } } td { (super::fmt::when(c.issued_at, now, &cu.zone(Some(&t)))) } td { (c.state.as_str()) } td { (c.details.clone().unwrap_or_default()) } } } } } }
            h2 { "Recent events" }
            div.table-wrap tabindex="0" { table { thead { tr { th { "When (agent)" } th { "Event" } th { "Data" } } }
                tbody hx-disable { @for e in &events { tr { td { (super::fmt::when(e.at, now, &cu.zone(Some(&t)))) } td { code { (e.kind) } } td { code { (e.data) } } } } } } }
            @if can_manage && d.active {
                div #device-result {}
                form.inline method="post" action=(retire) hx-post=(retire) hx-target="#device-result" hx-confirm="Retire this workstation? Its agent stops working at once." {
                    (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes"; button.danger type="submit" { "Retire device" }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/devices",
        &d.hostname,
        content,
    )))
}

pub async fn retire(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = device_id(&id)?;
    form.confirmed("the retirement")?;
    service::devices::retire(&state.ctx, &cu.principal, &t, id, &cu.origin).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            html! { div.flash.info { "Retired: its agent can no longer connect." } }.into_string(),
        ))
}

pub async fn dismiss_alert(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = device_id(&id)?;
    form.confirmed("the dismissal")?;
    let a = service::tamper::dismiss(&state.ctx, &cu.principal, &t, id, &cu.origin).await?;
    let said = format!(
        "Alert dismissed ({}); it stays in the audit log.",
        a.label()
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html! { div.flash.info #device-alert role="status" { (said) } }.into_string()))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    form.confirmed("the revocation")?;
    service::devices::revoke_token(&state.ctx, &cu.principal, &t, &id, &cu.origin).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html! { div.flash.info { "Token revoked: it enrolls nothing more." } }.into_string()))
}

/// The tamper badge next to a workstation's state.
fn alert_badge(d: &crate::model::devices::Device) -> maud::Markup {
    maud::html! {
        @if let Some(a) = d.alert {
            " " span.badge.tamper-badge title=(a.label()) { "alert" }
        }
    }
}
