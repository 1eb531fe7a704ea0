//! Sign-in pages: first-run setup, enrollment, password → authenticator code, step-up, logout.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::WebError;
use super::session::{self, CurrentUser, origin_of, token_of};
use super::ui;
use crate::crypto::totp;
use crate::error::Error;
use crate::http::AppState;
use crate::model::one_time_links::LinkKind;
use crate::model::sessions::Stage;
use crate::service::{self, setup::Enrollment};

const BAD_LOGIN: &str = "Wrong email or password.";

/// 303 for plain forms, `HX-Redirect` for htmx, setting the session cookie when given.
pub fn redirect(req: &HttpRequest, to: &str, cookie: Option<&str>) -> HttpResponse {
    let htmx = req.headers().get("hx-request").is_some();
    let mut r = if htmx {
        HttpResponse::Ok()
    } else {
        HttpResponse::SeeOther()
    };
    if htmx {
        r.insert_header(("HX-Redirect", to.to_string()));
    } else {
        r.insert_header(("Location", to.to_string()));
    }
    if let Some(t) = cookie {
        r.cookie(session::cookie(t));
    }
    r.finish()
}

fn page(
    status: actix_web::http::StatusCode,
    title: &str,
    body: Markup,
    cookie: Option<&str>,
) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if let Some(t) = cookie {
        r.cookie(session::cookie(t));
    }
    r.content_type("text/html; charset=utf-8")
        .body(ui::bare_page(title, html! { main.narrow { (body) } }).into_string())
}

fn ok_page(title: &str, body: Markup, cookie: Option<&str>) -> HttpResponse {
    page(actix_web::http::StatusCode::OK, title, body, cookie)
}

/// The sign-in form's CSRF token and, when the browser has none yet, the pre-auth cookie to
/// set. Nothing is written: an anonymous visitor costs no database row (login CSRF is still
/// covered, by the cookie's MAC).
fn pre_auth(state: &AppState, req: &HttpRequest) -> Result<(String, Option<String>), WebError> {
    if let Some(v) = session::pre_token_of(req) {
        return Ok((service::auth::pre_auth_csrf(&state.ctx, &v), None));
    }
    let v = crate::crypto::random_token(24)?;
    Ok((service::auth::pre_auth_csrf(&state.ctx, &v), Some(v)))
}

fn login_form(csrf: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        form.stack #login method="post" action="/login" hx-post="/login" hx-target="this" hx-swap="outerHTML" {
            h1 { "Sign in" }
            (ui::form_error(error))
            (ui::csrf_input(csrf))
            (ui::field("Email", "email", "email", email, None))
            (ui::field("Password", "password", "password", "", None))
            button type="submit" { "Continue" }
        }
    }
}

pub async fn login_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let now = state.ctx.clock.now();
    if let Some(t) = token_of(&req)
        && let Some(s) = service::auth::session(&state.ctx, &t, now).await?
        && s.stage == Stage::Full
    {
        return Ok(redirect(&req, "/", None));
    }
    let needs_setup = service::auth::needs_setup(&state.ctx).await?;
    if needs_setup {
        return Ok(ok_page(
            "Setup pending",
            html! {
                h1 { "Hourglass is not set up yet" }
                p { "Open the one-time setup link printed on the appliance's console when it started, or run "
                    code { "hourglass admin setup" } " on the appliance." }
            },
            None,
        ));
    }
    let (csrf, new) = pre_auth(&state, &req)?;
    let mut r = ok_page("Sign in", login_form(&csrf, "", None), None);
    if let Some(v) = new {
        let _ = r.add_cookie(&session::pre_cookie(&v));
    }
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    email: String,
    password: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let ip = crate::http::client_ip(&req).unwrap_or_default();
    let old = token_of(&req);
    let csrf = pre_auth(&state, &req)?.0;
    let fail = |status: actix_web::http::StatusCode, msg: &str| {
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(login_form(&csrf, &f.email, Some(msg)).into_string())
    };
    if !state
        .limiter
        .allow(&format!("login:{ip}"), state.ctx.clock.now())
    {
        return Ok(fail(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from your address; wait a minute.",
        ));
    }
    match service::auth::password_login(
        &state.ctx,
        &f.email,
        Zeroizing::new(f.password.clone()),
        old,
        &origin_of(&req),
    )
    .await
    {
        Ok(service::auth::LoginOutcome::NeedMfa(t)) => Ok(redirect(&req, "/login/mfa", Some(&t))),
        Ok(service::auth::LoginOutcome::Done(t)) => Ok(redirect(&req, "/", Some(&t))),
        Err(Error::Unauthenticated) => {
            Ok(fail(actix_web::http::StatusCode::UNAUTHORIZED, BAD_LOGIN))
        }
        Err(e @ (Error::RateLimited | Error::Locked(_))) => Ok(fail(
            super::error::status_of(&e),
            &super::error::public_message(&e),
        )),
        Err(e) => Err(e.into()),
    }
}

fn mfa_form(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        form.stack #mfa method="post" action="/login/mfa" hx-post="/login/mfa" hx-target="this" hx-swap="outerHTML" {
            h1 { "Authenticator code" }
            p.muted { "Enter the 6-digit code from your authenticator app." }
            (ui::form_error(error))
            (ui::csrf_input(csrf))
            label { "Code" input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required autofocus; }
            button type="submit" { "Sign in" }
        }
    }
}

pub async fn mfa_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let token = token_of(&req).ok_or(WebError(Error::Unauthenticated))?;
    let s = service::auth::session(&state.ctx, &token, state.ctx.clock.now()).await?;
    let Some(s) = s.filter(|s| s.stage == Stage::Mfa) else {
        return Ok(redirect(&req, "/login", None));
    };
    Ok(ok_page(
        "Authenticator code",
        mfa_form(&service::auth::csrf_token(&state.ctx, &s), None),
        None,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    code: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, WebError> {
    let token = token_of(&req).ok_or(WebError(Error::Unauthenticated))?;
    let csrf = service::auth::csrf_for(&state.ctx, &token)
        .await?
        .unwrap_or_default();
    match service::auth::mfa_login(&state.ctx, &token, &form.code, &origin_of(&req)).await {
        Ok(t) => Ok(redirect(&req, "/", Some(&t))),
        Err(e @ (Error::Validation { .. } | Error::RateLimited | Error::Locked(_))) => {
            let msg = match &e {
                Error::Validation { msg, .. } => msg.clone(),
                other => super::error::public_message(other),
            };
            Ok(HttpResponse::build(super::error::status_of(&e))
                .content_type("text/html; charset=utf-8")
                .body(mfa_form(&csrf, Some(&msg)).into_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    _user: CurrentUser,
) -> Result<HttpResponse, WebError> {
    if let Some(t) = token_of(&req) {
        service::auth::logout(&state.ctx, &t, &origin_of(&req)).await?;
    }
    let mut r = redirect(&req, "/login", None);
    let _ = r.add_cookie(&session::clear_cookie());
    Ok(r)
}

// --- setup and enrollment -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollForm {
    #[serde(default)]
    msp_name: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    password: String,
    password_confirm: String,
    code: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

fn enroll_view(
    action: &str,
    setup: bool,
    csrf: &str,
    secret: &[u8],
    account: &str,
    f: Option<&EnrollForm>,
    error: Option<&str>,
) -> Result<Markup, WebError> {
    // The authenticator label must not be empty (an empty account name makes no valid URL).
    let account = if account.trim().is_empty() {
        "Hourglass account"
    } else {
        account
    };
    let url = totp::otpauth_url(secret, "Hourglass", account)?;
    let qr = totp::qr_png_base64(&url)?;
    let v = |s: Option<&str>| s.unwrap_or("").to_string();
    Ok(html! {
        form.stack #enroll method="post" action=(action) hx-post=(action) hx-target="this" hx-swap="outerHTML" {
            h1 { (if setup { "Set up Hourglass" } else { "Activate your account" }) }
            (ui::form_error(error))
            (ui::csrf_input(csrf))
            @if setup {
                (ui::field("Organisation (MSP) name", "msp_name", "text", &v(f.map(|f| f.msp_name.as_str())), None))
                (ui::field("First name", "first_name", "text", &v(f.map(|f| f.first_name.as_str())), None))
                (ui::field("Last name", "last_name", "text", &v(f.map(|f| f.last_name.as_str())), None))
                (ui::field("Email", "email", "email", &v(f.map(|f| f.email.as_str())), None))
            }
            (ui::field("Password (12–128 characters)", "password", "password", "", None))
            (ui::field("Repeat the password", "password_confirm", "password", "", None))
            div.card {
                p { "Scan this code with your authenticator app, then enter the 6-digit code it shows." }
                img.qr src=(format!("data:image/png;base64,{qr}")) alt="Authenticator QR code" width="200" height="200";
                p.muted { "Or enter this key by hand: " code { (totp::base32(secret)) } }
            }
            label { "Code from the app" input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required; }
            button type="submit" { (if setup { "Create the MSP and sign in" } else { "Activate and sign in" }) }
        }
    })
}

async fn enroll_get(
    state: &AppState,
    req: &HttpRequest,
    kind: LinkKind,
    token: &str,
) -> Result<HttpResponse, WebError> {
    let o = origin_of(req);
    let link = match service::setup::check_link(&state.ctx, kind, token, &o).await {
        Ok(l) => l,
        Err(e @ Error::Gone(_)) => {
            return Ok(page(
                actix_web::http::StatusCode::GONE,
                "Link expired",
                html! { h1 { "This link cannot be used" } p { (super::error::public_message(&e)) } },
                None,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let account = match link.user_id {
        Some(uid) => service::auth::email_of(&state.ctx, uid)
            .await?
            .unwrap_or_default(),
        None => "MSP admin".to_string(),
    };
    let (session_token, secret) =
        service::setup::start_enrollment_session(&state.ctx, &link, &o).await?;
    let csrf = service::auth::csrf_for(&state.ctx, &session_token)
        .await?
        .unwrap_or_default();
    let action = format!("/{}/{token}", kind.path());
    let view = enroll_view(
        &action,
        kind == LinkKind::Setup,
        &csrf,
        &secret,
        &account,
        None,
        None,
    )?;
    Ok(ok_page(
        if kind == LinkKind::Setup {
            "Setup"
        } else {
            "Enrollment"
        },
        view,
        Some(&session_token),
    ))
}

pub async fn setup_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    enroll_get(&state, &req, LinkKind::Setup, &token).await
}

pub async fn enroll_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    enroll_get(&state, &req, LinkKind::Enrollment, &token).await
}

async fn enroll_post(
    state: &AppState,
    req: &HttpRequest,
    kind: LinkKind,
    link: &str,
    f: EnrollForm,
) -> Result<HttpResponse, WebError> {
    let session_token = token_of(req).ok_or(WebError(Error::Unauthenticated))?;
    let o = origin_of(req);
    let e = Enrollment {
        password: Zeroizing::new(f.password.clone()),
        password_confirm: Zeroizing::new(f.password_confirm.clone()),
        code: f.code.clone(),
    };
    let r = if kind == LinkKind::Setup {
        let form = service::setup::SetupForm {
            msp_name: f.msp_name.clone(),
            first_name: f.first_name.clone(),
            last_name: f.last_name.clone(),
            email: f.email.clone(),
            enrollment: e,
        };
        service::setup::complete_setup(&state.ctx, link, &session_token, form, &o).await
    } else {
        service::setup::complete_enrollment(&state.ctx, link, &session_token, e, &o).await
    };
    match r {
        Ok(t) => Ok(redirect(req, "/", Some(&t))),
        Err(Error::Validation { field, msg }) => {
            // Re-show the same QR code (the secret stays parked in the pre-auth session).
            let s =
                service::auth::session(&state.ctx, &session_token, state.ctx.clock.now()).await?;
            let secret = match &s {
                Some(s) => service::auth::pending_secret(&state.ctx, s)?,
                None => None,
            };
            let Some(secret) = secret else {
                return Err(WebError(Error::validation(field, msg)));
            };
            let action = format!("/{}/{link}", kind.path());
            let csrf = s
                .as_ref()
                .map(|s| service::auth::csrf_token(&state.ctx, s))
                .unwrap_or_default();
            let view = enroll_view(
                &action,
                kind == LinkKind::Setup,
                &csrf,
                &secret,
                &f.email,
                Some(&f),
                Some(&super::fmt::validation_message(&field, &msg)),
            )?;
            Ok(HttpResponse::UnprocessableEntity()
                .content_type("text/html; charset=utf-8")
                .body(view.into_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<EnrollForm>,
) -> Result<HttpResponse, WebError> {
    enroll_post(&state, &req, LinkKind::Setup, &token, form.into_inner()).await
}

pub async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<EnrollForm>,
) -> Result<HttpResponse, WebError> {
    enroll_post(
        &state,
        &req,
        LinkKind::Enrollment,
        &token,
        form.into_inner(),
    )
    .await
}
