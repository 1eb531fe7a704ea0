//! My account: password, sessions, API tokens.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::error::Error;
use crate::http::AppState;
use crate::service;

pub async fn account_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let tokens = service::tokens::list(&state.ctx, &cu.principal).await?;
    let uid = cu.principal.user_id;
    let sessions = service::auth::sessions_of(&state.ctx, uid).await?;
    let (now, zone) = (state.ctx.clock.now(), cu.zone(None));
    let content = html! {
        main {
            h1 { "My account" }
            div #account-result {}
            form.stack.card method="post" action="/account/password" hx-post="/account/password" hx-target="#account-result" {
                h2 { "Change password" }
                (ui::csrf_input(&cu.csrf))
                (ui::field("Current password", "current_password", "password", "", None))
                (ui::field("New password (12–128 characters)", "new_password", "password", "", None))
                button type="submit" { "Change password" }
            }
            div.card {
                h2 { "Signed-in sessions" }
                div.table-wrap tabindex="0" { table { thead { tr { th { "Since" } th { "Last active" } th { "Address" } } }
                    tbody { @for s in &sessions { tr { td { (super::fmt::when(s.created_at, now, &zone)) } td { (super::fmt::when(s.last_seen_at, now, &zone)) } td { (s.ip.clone().unwrap_or_default()) } } } } } }
                p { a href="/account/totp" { "Replace my authenticator app" } }
            }
            div.card {
                h2 { "API tokens" }
                (tokens_table(&cu, &tokens, now, &zone, false))
                div #token-result {}
                form.stack #new-token method="post" action="/account/tokens" hx-post="/account/tokens" hx-target="#token-result" hx-swap="afterbegin" data-reset-on-success {
                    div #new-token-error {}
                    (ui::csrf_input(&cu.csrf))
                    (ui::field("New token name", "name", "text", "", None))
                    label { "Stops working after " select name="expires_in_days" {
                        @for (v, l) in EXPIRY_CHOICES { option value=(v) selected[*v == "30"] { (l) } }
                    } }
                    label { input type="checkbox" name="sensitive" value="yes"; " Allow sensitive actions (reveal passwords, approve or revoke, change roles or settings); at most 30 days" }
                    button type="submit" { "Create token" }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        None,
        "account",
        "My account",
        content,
    )))
}

const EXPIRY_CHOICES: &[(&str, &str)] = &[
    ("1", "1 day"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("never", "Never (until revoked)"),
];

/// The person's API tokens; `oob` redraws the list in place after a new one.
fn tokens_table(
    cu: &CurrentUser,
    tokens: &[crate::model::tokens::ApiToken],
    now: crate::clock::Timestamp,
    zone: &str,
    oob: bool,
) -> maud::Markup {
    html! {
        div.table-wrap #tokens-list tabindex="0" hx-swap-oob=[oob.then_some("true")] { table #tokens-table { thead { tr { th { "Name" } th { "May do" } th { "Created" } th { "Last used" } th { "Expires" } th { span.sr-only { "Actions" } } } }
            tbody hx-disable {
                @if tokens.is_empty() { tr { td.empty colspan="6" { "No API tokens yet: create one below for a script or an RMM integration." } } }
                @for t in tokens { tr {
                td { (t.name) }
                td { @if t.sensitive { "Everything its owner may do" } @else { "Everything except sensitive actions" } }
                td { (super::fmt::when(t.created_at, now, zone)) } td { (super::fmt::when_opt(t.last_used_at, now, zone)) }
                td { @match t.expires_at { Some(e) => (super::fmt::when(e, now, zone)), None => "never" } }
                td { @if t.revoked_at.is_some() { "revoked" } @else if !t.usable(now) { "expired" } @else {
                    form.inline method="post" action=(format!("/account/tokens/{}/revoke", t.id)) hx-post=(format!("/account/tokens/{}/revoke", t.id)) hx-target="#account-result" hx-confirm="Revoke this token?" {
                        (ui::csrf_input(&cu.csrf)) button.secondary type="submit" { "Revoke" } }
                } }
            } } } } }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

fn flash(status: actix_web::http::StatusCode, class: &str, msg: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html! { div class=(format!("flash {class}")) { (msg) } }.into_string())
}

pub async fn change_password(
    state: web::Data<AppState>,
    cu: CurrentUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    match service::users::change_password(
        &state.ctx,
        &cu.principal,
        &cu.token,
        Zeroizing::new(f.current_password),
        Zeroizing::new(f.new_password),
        &cu.origin,
    )
    .await
    {
        Ok(()) => Ok(flash(
            actix_web::http::StatusCode::OK,
            "info",
            "Password changed.",
        )),
        Err(Error::Validation { field, msg }) => Ok(flash(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenForm {
    name: String,
    /// Whole days or "never".
    expires_in_days: Option<String>,
    sensitive: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn create_token(
    state: web::Data<AppState>,
    cu: CurrentUser,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, WebError> {
    let expires_in_days = match form.expires_in_days.as_deref().unwrap_or("never") {
        "never" => None,
        d => Some(d.parse::<u32>().map_err(|_| {
            Error::validation("expires_in_days", "choose how long the token works")
        })?),
    };
    let scope = service::tokens::Scope {
        sensitive: form.sensitive.as_deref() == Some("yes"),
        expires_in_days,
    };
    match service::tokens::create(&state.ctx, &cu.principal, &form.name, scope, &cu.origin).await {
        Ok((t, secret)) => {
            let tokens = service::tokens::list(&state.ctx, &cu.principal).await?;
            let (now, zone) = (state.ctx.clock.now(), cu.zone(None));
            Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
                html! {
                    div.flash.info.new-token { "Token " strong { (t.name) } ": copy it now, it is not shown again: " code.token { (secret) } }
                    (tokens_table(&cu, &tokens, now, &zone, true))
                }
                .into_string(),
            ))
        }
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "new-token-error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    cu: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    // Another person's token is not there (404, audited).
    cu.acting.appliance_level();
    service::tokens::revoke(&state.ctx, &cu.principal, &id, &cu.origin).await?;
    Ok(flash(
        actix_web::http::StatusCode::OK,
        "info",
        "Token revoked.",
    ))
}

pub async fn totp_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let secret = service::auth::start_totp_change(&state.ctx, &cu.principal, &cu.token).await?;
    let url = crate::crypto::totp::otpauth_url(&secret, "Hourglass", &cu.user.email)?;
    let qr = crate::crypto::totp::qr_png_base64(&url)?;
    let content = html! {
        main {
            h1 { "Replace my authenticator app" }
            div.card {
                p { "Scan this code with the new app, then enter the code it shows. Your old app stops working and your other sessions end." }
                img.qr src=(format!("data:image/png;base64,{qr}")) alt="Authenticator QR code" width="200" height="200";
                p.muted { "Or enter this key by hand: " code { (crate::crypto::totp::base32(&secret)) } }
            }
            div #account-result {}
            form.stack method="post" action="/account/totp" hx-post="/account/totp" hx-target="#account-result" {
                (ui::csrf_input(&cu.csrf))
                label { "Code from the new app" input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required; }
                button type="submit" { "Use the new app" }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        None,
        "account",
        "Authenticator",
        content,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpForm {
    code: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn change_totp(
    state: web::Data<AppState>,
    cu: CurrentUser,
    form: web::Form<TotpForm>,
) -> Result<HttpResponse, WebError> {
    match service::auth::finish_totp_change(
        &state.ctx,
        &cu.principal,
        &cu.token,
        &form.code,
        &cu.origin,
    )
    .await
    {
        Ok(()) => Ok(flash(
            actix_web::http::StatusCode::OK,
            "info",
            "Your new authenticator app is active.",
        )),
        Err(Error::Validation { field, msg }) => Ok(flash(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(e.into()),
    }
}
