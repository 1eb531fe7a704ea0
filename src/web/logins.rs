//! Technician logins in the portal: "Log in" on a workstation, the password shown once,
//! the sessions with end/revoke, the offline code, and the escrow history.

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
use crate::ids::{DeviceId, LoginId};
use crate::model::logins::Credential;
use crate::model::logins::Login;
use crate::model::tenants::Tenant;
use crate::service;

fn left(l: &Login, now: Timestamp) -> i64 {
    ((l.expires_at.millis() - now.millis()) / 1000).max(0)
}

/// A table of sessions with End (one's own) or Revoke (others', `devices.manage`).
pub fn sessions_table(cu: &CurrentUser, t: &Tenant, logins: &[Login], now: Timestamp) -> Markup {
    let may_revoke = cu
        .principal
        .permissions_in(t)
        .is_some_and(|p| p.contains(Permission::DevicesManage));
    html! {
        div.table-wrap tabindex="0" { table.logins {
            thead { tr { th { "Who" } th { "Workstation" } th { "Account" } th { "State" } th { "Time left" } th { "Ticket" } th {} } }
            tbody {
                @if logins.is_empty() { tr { td.empty colspan="7" { "No technician sessions yet: start one with Log in on a workstation's page." } } }
                @for l in logins {
                    tr.login data-login=(l.id) data-state=(l.state.as_str()) {
                        td { (l.email) } td { (l.hostname) } td { code { (l.account) } }
                        td { (l.state.label()) @if let Some(f) = &l.failure { br; span.bad.failure { (f) } } }
                        td { @if l.state == crate::model::logins::State::Active { span data-seconds-left=(left(l, now)) { (left(l, now) / 60) " min" } } }
                        td { (l.ticket.clone().unwrap_or_default()) }
                        td {
                            @let own = l.user_id == cu.principal.user_id;
                            @if l.state.is_open() && (own || may_revoke) {
                                @let url = format!("/t/{}/logins/{}/end", t.slug, l.id);
                                form.inline method="post" action=(url) hx-post=(url) hx-confirm=(if own { "End your session? The password is changed and the account disabled." } else { "Revoke this technician's session? The password is changed and the account disabled." }) {
                                    (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes";
                                    button.danger type="submit" { (if own { "End" } else { "Revoke" }) }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// The device page's part: log in, the sessions there, the escrow history.
#[allow(clippy::too_many_arguments)] // each is a separate part of the section
pub fn device_section(
    cu: &CurrentUser,
    t: &Tenant,
    device: DeviceId,
    active: bool,
    online: bool,
    logins: &[Login],
    history: &[Credential],
    now: Timestamp,
) -> Markup {
    let can_login = cu
        .principal
        .permissions_in(t)
        .is_some_and(|p| p.contains(Permission::DevicesLogin));
    let start = format!("/t/{}/devices/{device}/logins", t.slug);
    html! {
        h2 { "Technician login" }
        @if can_login && active {
            @let offline_code = format!("/t/{}/devices/{device}/offline-code", t.slug);
            @if !online {
                div.flash.warn.offline-warning role="status" {
                    "This workstation is offline: a login waits until it connects again, and expires if it does not. "
                    "If it cannot reach the appliance, use the " a href=(offline_code) { "offline code" } " at the workstation instead."
                }
            }
            form.inline.login-start method="post" action=(start) {
                (ui::csrf_input(&cu.csrf))
                label { "Minutes " input type="number" name="duration_minutes" value=(crate::model::logins::DEFAULT_MINUTES.min(t.settings.jit_max_minutes)) min="5" max=(t.settings.jit_max_minutes); }
                label { "Ticket " input type="text" name="ticket" maxlength="64"; }
                @if !online { label { input type="checkbox" name="offline_ack" value="yes" required; " Start it anyway" } }
                button type="submit" { "Log in" }
            }
            p { a href=(offline_code) { "Offline code" } span.muted { " (for when the workstation cannot reach the appliance)" } }
        }
        (sessions_table(cu, t, logins, now))
        h3 { "Password history" }
        p.muted { "Escrowed passwords are sealed; they are never shown again after their one view." }
        div.table-wrap tabindex="0" { table.credentials {
            thead { tr { th { "Created" } th { "Account" } th { "Why" } th { "State" } th { "Confirmed by the workstation" } th { "Kept" } } }
            tbody { @for c in history { tr {
                td { (super::fmt::when(c.created_at, now, &cu.zone(Some(t)))) } td { code { (c.account) } } td { (c.reason.as_str()) } td { (c.state.as_str()) }
                td { (super::fmt::when_opt(c.activated_at, now, &cu.zone(Some(t)))) }
                td { (if c.password_sealed.is_some() { "sealed" } else { "purged" }) }
            } } }
        } }
    }
}

/// Who revealed a password or viewed an offline code on this workstation, and when.
pub fn reveals_table(
    reveals: &[(crate::model::audit::Entry, Option<String>)],
    now: Timestamp,
    zone: &str,
) -> Markup {
    html! {
        h3 { "Revealed" }
        div.table-wrap tabindex="0" { table.reveals {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Account" } } }
            tbody {
                @if reveals.is_empty() { tr { td colspan="4" { span.muted { "Nothing has been revealed here." } } } }
                @for (e, who) in reveals {
                    @let d: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
                    tr {
                        td { (super::fmt::when(e.at, now, zone)) }
                        td { (who.clone().or_else(|| e.actor_id.clone()).unwrap_or_default()) }
                        td { (match d["what"].as_str() { Some("password") => "password (its one view)", Some("offline_code") => "offline code", _ => "secret" }) }
                        td { code { (d["account"].as_str().unwrap_or_default()) } }
                    }
                }
            }
        } }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartForm {
    #[serde(default)]
    duration_minutes: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    /// Starting on a workstation that is offline was acknowledged.
    #[serde(default)]
    offline_ack: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

fn parse_device(raw: &str) -> Result<DeviceId, WebError> {
    match DeviceId::parse(raw) {
        Some(id) => Ok(id),
        None => Err(WebError(Error::NotFound)),
    }
}

fn parse_login(raw: &str) -> Result<LoginId, WebError> {
    match LoginId::parse(raw) {
        Some(id) => Ok(id),
        None => Err(WebError(Error::NotFound)),
    }
}

/// Starts a session, then shows its password on the one-time page.
pub async fn start(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<StartForm>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let device = parse_device(&id)?;
    let f = form.into_inner();
    // An offline workstation: the person has been told, and said to go on.
    if f.offline_ack.as_deref() != Some("yes")
        && let Ok((d, _, _)) = service::devices::detail(&state.ctx, &cu.principal, &t, device).await
        && !service::devices::is_online(&state.ctx, &d, state.ctx.clock.now())
    {
        return Err(WebError(Error::validation(
            "offline_ack",
            "this workstation is offline: the login would wait until it connects. Tick \"Start it anyway\", or use its offline code",
        )));
    }
    let minutes = match f
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
    let l = service::logins::start(
        &state.ctx,
        &cu.principal,
        &t,
        device,
        minutes,
        f.ticket,
        &cu.origin,
    )
    .await?;
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/logins/{}/reveal", t.slug, l.id),
        None,
    ))
}

/// The password, once (CRED-06): a second visit answers 404.
pub async fn reveal(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = parse_login(&id)?;
    let (l, password) =
        service::logins::reveal(&state.ctx, &cu.principal, &t, id, &cu.origin).await?;
    let now = state.ctx.clock.now();
    let content = html! {
        main {
            h1 { "Log in to " (l.hostname) }
            div.card.reveal {
                p { "Account " code #login-account { (l.account) } }
                p { "Password " code.secret #login-password { (password.as_str()) } " "
                    button.secondary type="button" data-copy="login-password" { "Copy" } }
                p.muted { "Shown only now: this page cannot be opened again. "
                    @if l.state == crate::model::logins::State::Waiting { "Waiting for the workstation to confirm the account. " }
                    "The session ends in " span data-seconds-left=(left(&l, now)) { (left(&l, now) / 60) " min" }
                    "; the password is then changed and the account disabled." }
                p { a href=(format!("/t/{}/devices/{}", t.slug, l.device_id)) { "Back to the workstation" } }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/logins",
        "Log in",
        content,
    )))
}

/// The tenant's technician sessions.
pub async fn logins_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let logins = service::logins::list(&state.ctx, &cu.principal, &t, None).await?;
    let now = state.ctx.clock.now();
    let content = html! {
        main {
            h1 { "Technician sessions" }
            p.muted { "Start one from a workstation's page." }
            (sessions_table(&cu, &t, &logins, now))
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/logins",
        "Technician sessions",
        content,
    )))
}

pub async fn end(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = parse_login(&id)?;
    form.confirmed("ending the session")?;
    let l = service::logins::end(&state.ctx, &cu.principal, &t, id, &cu.origin).await?;
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/devices/{}", t.slug, l.device_id),
        None,
    ))
}

/// The workstation's current offline code (every view audited).
pub async fn offline_code(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let device = parse_device(&id)?;
    let c =
        service::logins::offline_code(&state.ctx, &cu.principal, &t, device, &cu.origin).await?;
    let qr = crate::crypto::totp::qr_png_base64(&c.otpauth)?;
    let content = html! {
        main {
            h1 { "Offline code" }
            div.card {
                p { "On the workstation, run:" }
                pre { code.command { "sudo hourglass agent offline-login --account " (c.account) " --code " span #offline-code { (c.code) } } }
                p.muted { "This code changes in " span data-seconds-left=(c.seconds_left) data-reload-at-zero { (c.seconds_left) " s" } " (the page then shows the next one) and works once. Or add the workstation to an authenticator app:" }
                img.qr src=(format!("data:image/png;base64,{qr}")) alt="Offline code QR" width="180" height="180";
            }
            p { a href=(format!("/t/{}/devices/{device}", t.slug)) { "Back to the workstation" } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/devices",
        "Offline code",
        content,
    )))
}
