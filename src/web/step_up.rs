//! Step-up (SESS-05) as a person meets it. A sensitive action whose last code is older than
//! five minutes is not refused with a bare 401: the person is asked for a fresh code next to
//! what they were doing, and after a correct one the action goes through with what they typed.
//!
//! - A plain form post answers with a page in the portal layout whose form re-sends the
//!   original fields plus `step_up_code` to the original URL; the `StepUp` middleware checks
//!   that code before the handler runs (renewing the session id) and strips it from the body.
//! - An htmx request answers with a dialog (`#step-up-dialog`); after a correct code,
//!   `hourglass.js` re-issues the original request from its element, so the page is not
//!   reloaded and nothing typed is lost. The CSRF token survives the id renewal.
//! - A navigation (GET) answers with a page whose form posts the code to `/step-up` and
//!   returns to the page asked for.
//!
//! The same middleware draws every other error of a signed-in person inside the layout, with
//! the navigation still there.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::{Error as ActixError, FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::csrf::{FORM_LIMIT, FormBody, put_back};
use super::error::{WebError, public_message, status_of};
use super::session::{self, CurrentUser, Renewed, origin_of, token_of};
use super::{nav, ui};
use crate::error::Error;
use crate::http::AppState;
use crate::service;

pub const DIALOG_ID: &str = "step-up-dialog";
/// The field that carries a fresh code with a re-sent form.
pub const CODE_FIELD: &str = "step_up_code";

/// Only a same-origin path may be returned to (no `//host`, no `/\host`, no scheme).
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// What the person was about to do, in words, from the route.
pub fn describe(method: &str, path: &str) -> &'static str {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match (method, last) {
        (_, "approve") => "approve this request",
        (_, "deny") => "deny this request",
        (_, "revoke") => "revoke this session",
        (_, "end") => "end this technician session",
        ("POST", "logins") => "log in to this workstation",
        (_, "reveal") => "see the workstation password",
        (_, "offline-code") => "see the offline code",
        (_, "export") => "export",
        (_, "settings") => "save these settings",
        (_, "link") => "change whom this endpoint user belongs to",
        (_, "tokens") => "create an API token",
        (_, "totp") => "replace your authenticator",
        (_, "password") => "change your password",
        _ if path.contains("/policies") => "change the application policies",
        _ if path.contains("/users/") => "change this user",
        _ if path.contains("/roles") => "change the roles",
        _ if path.contains("/webhooks") => "change the notifications",
        _ if path.contains("/auto-approval") => "change the auto-approval rules",
        _ => "continue",
    }
}

fn code_input(error: Option<&str>, name: &str) -> Markup {
    html! {
        label {
            "Code from your authenticator app"
            input name=(name) inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"
                maxlength="6" required autofocus aria-invalid=[error.map(|_| "true")];
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// The page shown instead of a plain form's action (or a navigation) until a code is given.
pub fn prompt_page(
    cu: &CurrentUser,
    method: &str,
    path_and_query: &str,
    fields: &[(String, String)],
    error: Option<&str>,
) -> Markup {
    let path = path_and_query.split('?').next().unwrap_or("/");
    let what = describe(method, path);
    let tenant = tenant_of(cu, path);
    let content = html! {
        main.narrow-main {
            h1 { "Confirm it is you" }
            p { "To " (what) ", enter a fresh code from your authenticator app. "
                span.muted { "Sensitive actions ask again when the last code is more than five minutes old." } }
            @if method == "GET" {
                form.stack.card.step-up method="post" action="/step-up" {
                    (ui::csrf_input(&cu.csrf))
                    input type="hidden" name="next" value=(path_and_query);
                    (code_input(error, "code"))
                    div.buttons { button type="submit" { "Confirm and continue" } " " a.button.secondary href="/" { "Cancel" } }
                }
            } @else {
                form.stack.card.step-up method="post" action=(path_and_query) {
                    (ui::csrf_input(&cu.csrf))
                    @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
                    (code_input(error, CODE_FIELD))
                    div.buttons { button type="submit" { "Confirm and " (what) } " " a.button.secondary href=(back_link(cu, path)) { "Cancel" } }
                }
            }
        }
    };
    nav::page(cu, tenant, "", "Confirm it is you", content)
}

/// The dialog's content for htmx requests; `hourglass.js` opens it and, after the code,
/// repeats the original request.
pub fn dialog(what: &str, error: Option<&str>) -> Markup {
    html! {
        form.stack.step-up #step-up-form method="post" action="/step-up" hx-post="/step-up" hx-target="this" hx-swap="outerHTML" {
            h2 #step-up-title { "Confirm it is you" }
            p { "To " (what) ", enter a fresh code from your authenticator app." }
            (code_input(error, "code"))
            div.buttons { button type="submit" { "Confirm" } " " button.secondary type="button" data-close-dialog { "Cancel" } }
        }
    }
}

/// Where "Cancel" leads: the page the form was on (the tenant's section).
fn back_to(path: &str) -> String {
    match path.strip_prefix("/t/").and_then(|r| r.split_once('/')) {
        Some((slug, rest)) => {
            let section = rest.split('/').next().unwrap_or("");
            format!("/t/{slug}/{section}")
        }
        None => "/".into(),
    }
}

/// "Back" only into a tenant the person can see (a foreign slug is not echoed: its page must
/// read exactly like a missing one's).
fn back_link(cu: &CurrentUser, path: &str) -> String {
    match tenant_of(cu, path) {
        Some(_) => back_to(path),
        None => "/".into(),
    }
}

fn tenant_of<'a>(cu: &'a CurrentUser, path: &str) -> Option<&'a crate::model::tenants::Tenant> {
    let slug = path.strip_prefix("/t/")?.split('/').next()?;
    cu.tenants.iter().find(|t| t.slug.as_str() == slug)
}

fn html(status: StatusCode, m: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(m.into_string())
}

/// The htmx answer that opens the dialog over the page.
fn dialog_response(what: &str, error: Option<&str>, status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("HX-Retarget", format!("#{DIALOG_ID}")))
        .insert_header(("HX-Reswap", "innerHTML"))
        .insert_header(("X-Step-Up", "required"))
        .content_type("text/html; charset=utf-8")
        .body(dialog(what, error).into_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    code: String,
    #[serde(default)]
    next: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

/// What a wrong, reused or locked code is told.
fn code_error(e: &Error) -> Option<String> {
    match e {
        Error::Validation { msg, .. } => Some(format!("That code did not work: {msg}.")),
        Error::RateLimited | Error::Locked(_) => Some(public_message(e)),
        _ => None,
    }
}

/// `POST /step-up`: the dialog's code (htmx) or a navigation's code (plain form).
pub async fn step_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, WebError> {
    let token = token_of(&req).ok_or(WebError(Error::Unauthenticated))?;
    let htmx = req.headers().get("hx-request").is_some();
    let next = form.next.as_deref().and_then(safe_next).unwrap_or("/");
    match service::auth::step_up(&state.ctx, &token, form.code.trim(), &origin_of(&req)).await {
        Ok(t) if htmx => Ok(HttpResponse::NoContent()
            .cookie(session::cookie(&t))
            .insert_header(("HX-Trigger", "hg-stepped-up"))
            .finish()),
        Ok(t) => Ok(super::auth::redirect(&req, next, Some(&t))),
        Err(e) => {
            let Some(msg) = code_error(&e) else {
                return Err(e.into());
            };
            let status = status_of(&e);
            if htmx {
                return Ok(html(status, dialog("continue", Some(&msg))));
            }
            let cu = CurrentUser::extract(&req).await?;
            Ok(html(status, prompt_page(&cu, "GET", next, &[], Some(&msg))))
        }
    }
}

/// The middleware: replays a code sent with a form, turns `StepUpRequired` into the prompt,
/// and draws a signed-in person's errors inside the layout.
pub struct StepUp;

impl<S, B> Transform<S, ServiceRequest> for StepUp
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Transform = StepUpService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(StepUpService {
            service: Rc::new(service),
        }))
    }
}

pub struct StepUpService<S> {
    service: Rc<S>,
}

/// The portal's own pages: not the APIs, assets, or the sign-in and step-up forms themselves.
fn applies(path: &str) -> bool {
    ![
        "/api/",
        "/agent/",
        "/assets/",
        "/login",
        "/setup/",
        "/enroll/",
        "/step-up",
        "/csp-report",
        "/healthz",
        "/metrics",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// The form's fields as sent, without its token or a code.
fn carried(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .filter(|(k, _)| k != "csrf_token" && k != CODE_FIELD)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn encode(fields: &[(String, String)], token: Option<&str>) -> web::Bytes {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    if let Some(t) = token {
        s.append_pair("csrf_token", t);
    }
    web::Bytes::from(s.finish())
}

/// The form's body (read once, put back for the handler); Err when it is over the limit, so
/// a cut-off body never reaches a handler as if it were whole.
async fn read_form(req: &mut ServiceRequest) -> Result<Option<web::Bytes>, ()> {
    if req.content_type() != "application/x-www-form-urlencoded" {
        return Ok(None);
    }
    if let Some(b) = req.extensions().get::<FormBody>().map(|b| b.0.clone()) {
        return Ok(Some(b));
    }
    use futures_util::StreamExt;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ())?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(());
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    put_back(req, body.clone());
    Ok(Some(body))
}

impl<S, B> Service<ServiceRequest> for StepUpService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let svc = self.service.clone();
        Box::pin(async move {
            if !applies(req.path()) {
                return svc
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body);
            }
            let asked = Asked::of(&req);
            let (fields, renewed) = match resent(&mut req, &asked).await {
                Ok(carried) => carried,
                Err(answer) => return Ok(answer),
            };
            let mut res = svc.call(req).await?.map_into_boxed_body();
            if let Some(t) = &renewed {
                let _ = res.response_mut().add_cookie(&session::cookie(t));
            }
            Ok(answer(res, &asked, &fields).await)
        })
    }
}

/// What was asked for, as the prompt needs it to re-send the form.
struct Asked {
    method: String,
    target: String,
    htmx: bool,
}

impl Asked {
    fn of(req: &ServiceRequest) -> Asked {
        Asked {
            method: req.method().as_str().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            htmx: req.headers().get("hx-request").is_some(),
        }
    }
}

/// Reads a posted form; when it carries a step-up code, checks the code and puts the form
/// back without it. Returns the form's fields and the renewed session id (the code renews
/// the session), or the answer to give at once (form too large, wrong code, signed out).
async fn resent(
    req: &mut ServiceRequest,
    asked: &Asked,
) -> Result<(Vec<(String, String)>, Option<String>), ServiceResponse<BoxBody>> {
    let form = if asked.method == "POST" {
        read_form(req).await.map_err(|()| {
            WebError(Error::TooLarge(format!(
                "This form is too large (at most {} KiB).",
                FORM_LIMIT / 1024
            )))
        })
    } else {
        Ok(None)
    };
    let form = match form {
        Ok(f) => f,
        Err(e) => {
            return Err(answer_now(
                req,
                actix_web::ResponseError::error_response(&e),
            ));
        }
    };
    let Some(body) = form else {
        return Ok((Vec::new(), None));
    };
    let fields = carried(&body);
    let Some(code) = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == CODE_FIELD)
        .map(|(_, v)| v.trim().to_string())
    else {
        return Ok((fields, None));
    };
    let token_field = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.into_owned());
    put_back(req, encode(&fields, token_field.as_deref()));
    match replay(req, &code).await {
        Ok(t) => {
            req.extensions_mut().insert(Renewed(t.clone()));
            Ok((fields, Some(t)))
        }
        Err(Some(msg)) => {
            let r = req.request().clone();
            let res = match CurrentUser::extract(&r).await {
                Ok(cu) => html(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    prompt_page(&cu, &asked.method, &asked.target, &fields, Some(&msg)),
                ),
                Err(e) => actix_web::ResponseError::error_response(&e),
            };
            Err(answer_now(req, res))
        }
        Err(None) => Err(answer_now(
            req,
            actix_web::ResponseError::error_response(&WebError(Error::Unauthenticated)),
        )),
    }
}

/// An answer before the handler ran (the request is not passed on).
fn answer_now(req: &ServiceRequest, res: HttpResponse) -> ServiceResponse<BoxBody> {
    ServiceResponse::new(req.request().clone(), res)
}

/// After the handler: a step-up refusal becomes the prompt (a dialog for htmx), and other
/// errors of a full page are shown inside the portal's layout.
async fn answer(
    res: ServiceResponse<BoxBody>,
    asked: &Asked,
    fields: &[(String, String)],
) -> ServiceResponse<BoxBody> {
    let Some((step_up, signed_out, message)) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<WebError>())
        .map(|e| {
            (
                matches!(e.0, Error::StepUpRequired),
                matches!(e.0, Error::Unauthenticated),
                public_message(&e.0),
            )
        })
    else {
        return res;
    };
    let r = res.request().clone();
    if asked.htmx {
        if step_up {
            let what = describe(&asked.method, asked.target.split('?').next().unwrap_or("/"));
            return res.into_response(dialog_response(what, None, StatusCode::UNAUTHORIZED));
        }
        return res;
    }
    if signed_out {
        return res;
    }
    let Ok(cu) = CurrentUser::extract(&r).await else {
        return res;
    };
    let status = res.status();
    let page = if step_up {
        prompt_page(&cu, &asked.method, &asked.target, fields, None)
    } else {
        error_in_layout(&cu, &asked.target, status, &message)
    };
    res.into_response(html(status, page))
}

/// Checks the code sent with a form; Err(Some(message)) for a wrong one, Err(None) when the
/// session is gone.
async fn replay(req: &ServiceRequest, code: &str) -> Result<String, Option<String>> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or(None)?;
    let token = token_of(req.request()).ok_or(None)?;
    service::auth::step_up(&state.ctx, &token, code, &origin_of(req.request()))
        .await
        .map_err(|e| code_error(&e))
}

/// An error page for a signed-in person: the message, the navigation, a way back.
fn error_in_layout(cu: &CurrentUser, target: &str, status: StatusCode, message: &str) -> Markup {
    let path = target.split('?').next().unwrap_or("/");
    let request_id = super::headers::current_request_id().unwrap_or_default();
    let title = match status.as_u16() {
        404 => "Not found",
        403 => "Not allowed",
        413 => "Too large",
        422 | 400 => "Please check what you entered",
        409 => "Already changed",
        429 => "Too many attempts",
        500..=599 => "Something went wrong",
        _ => "This did not work",
    };
    let content = html! {
        main.error-page {
            h1 { (title) }
            div.flash.error role="alert" { (message) }
            p.muted { "Request id: " code { (request_id) } }
            @if status != StatusCode::NOT_FOUND { p { a href=(back_link(cu, path)) { "Back" } " · " a href="/" { "Dashboard" } } }
            @else { p { a href="/" { "Back to the dashboard" } } }
        }
    };
    // A missing and a foreign object read the same: no tenant navigation on a 404 (AZ-02).
    let tenant = if status == StatusCode::NOT_FOUND {
        None
    } else {
        tenant_of(cu, path)
    };
    nav::page(cu, tenant, "", title, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_returned_to() {
        assert_eq!(safe_next("/t/acme/requests"), Some("/t/acme/requests"));
        assert_eq!(
            safe_next("/t/a/logins/x/reveal?y=1"),
            Some("/t/a/logins/x/reveal?y=1")
        );
        for bad in [
            "//evil.test/x",
            "/\\evil.test/x",
            "https://evil.test",
            "evil",
            "/a\nb",
            "/ x",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn actions_are_named() {
        assert_eq!(
            describe("POST", "/t/a/requests/1/approve"),
            "approve this request"
        );
        assert_eq!(
            describe("POST", "/t/a/devices/1/logins"),
            "log in to this workstation"
        );
        assert_eq!(
            describe("GET", "/t/a/logins/1/reveal"),
            "see the workstation password"
        );
        assert_eq!(back_to("/t/acme/requests/1/approve"), "/t/acme/requests");
        assert_eq!(back_to("/account/tokens"), "/");
    }

    #[test]
    fn a_replayed_form_keeps_its_fields_but_not_the_code() {
        let f = carried(b"duration_minutes=45&csrf_token=abc&step_up_code=123456&back=tenant");
        assert_eq!(
            f,
            vec![
                ("duration_minutes".to_string(), "45".to_string()),
                ("back".to_string(), "tenant".to_string())
            ]
        );
        assert_eq!(
            encode(&f, Some("abc")).as_ref(),
            b"duration_minutes=45&back=tenant&csrf_token=abc"
        );
    }
}
