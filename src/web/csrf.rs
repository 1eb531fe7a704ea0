//! CSRF defence in depth for the portal (WEB-02): Fetch Metadata, an exact Origin/Referer
//! match, and a per-session synchronizer token in `X-CSRF-Token` or a `csrf_token` field.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error as ActixError, HttpMessage, ResponseError, web};

use super::error::WebError;
use super::session;
use crate::crypto::ct_eq;
use crate::error::Error;
use crate::http::AppState;
use crate::model::audit::Event;
use crate::service::audit::Audit;

/// Paths exempt from the token check: browser reports and bearer-token APIs (no cookies).
fn exempt(path: &str) -> bool {
    path == "/csp-report" || path.starts_with("/api/") || path.starts_with("/agent/")
}

pub struct Csrf;

impl<S, B> Transform<S, ServiceRequest> for Csrf
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Transform = CsrfService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CsrfService {
            service: Rc::new(service),
        }))
    }
}

pub struct CsrfService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for CsrfService<S>
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
            if req.method().is_safe()
                || req.method() == actix_web::http::Method::TRACE
                || exempt(req.path())
            {
                return svc
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body);
            }
            match check(&mut req).await {
                Ok(()) => svc
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body),
                Err(Refusal::TooLarge) => {
                    let res = WebError(Error::TooLarge(format!(
                        "This form is too large (at most {} KiB).",
                        FORM_LIMIT / 1024
                    )))
                    .error_response();
                    Ok(req.into_response(res))
                }
                Err(Refusal::Forgery(why)) => {
                    if let Some(state) = req.app_data::<web::Data<AppState>>().cloned() {
                        let now = state.ctx.clock.now();
                        let o = session::origin_of(req.request());
                        let path = req.path().to_string();
                        let _ = state
                            .ctx
                            .db
                            .write(move |tx| {
                                Audit::new(Event::MaliciousCsrf, now)
                                    .failure()
                                    .from(&o)
                                    .details(serde_json::json!({"reason": why, "path": path}))
                                    .append(tx)
                                    .map(|_| ())
                            })
                            .await;
                    }
                    let res = WebError(Error::Forbidden("This request was refused as a possible cross-site request forgery. Reload the page and try again.".into())).error_response();
                    Ok(req.into_response(res))
                }
            }
        })
    }
}

/// The body of a form this middleware had to read, left for the step-up middleware.
#[derive(Clone, Debug)]
pub struct FormBody(pub web::Bytes);

/// Why a request was refused.
enum Refusal {
    /// A possible forgery (audited as `malicious_csrf`).
    Forgery(&'static str),
    /// A body larger than any portal form: not an attack, an honest 413.
    TooLarge,
}

/// The largest portal form (the same limit as the form extractor).
pub const FORM_LIMIT: usize = 64 * 1024;

async fn check(req: &mut ServiceRequest) -> Result<(), Refusal> {
    use Refusal::Forgery;
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if header("sec-fetch-site").as_deref() == Some("cross-site")
        || header("sec-fetch-site").as_deref() == Some("same-site")
    {
        return Err(Forgery("cross-site fetch metadata"));
    }
    let host = req.connection_info().host().to_string();
    let expected = format!("https://{host}");
    let same_origin_fetch = header("sec-fetch-site").as_deref() == Some("same-origin");
    match (header("origin"), header("referer")) {
        // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` with plain form
        // posts; Fetch Metadata then vouches for the origin (the token is still required).
        (Some(o), _) if o == "null" && same_origin_fetch => {}
        (Some(o), _) if o != expected => return Err(Forgery("origin mismatch")),
        (None, Some(r)) if !(r == expected || r.starts_with(&format!("{expected}/"))) => {
            return Err(Forgery("referer mismatch"));
        }
        _ => {}
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(Forgery("no state"));
    };
    // The session's token, or the sign-in form's (pre-auth cookie).
    let mut wanted = Vec::new();
    if let Some(token) = session::token_of(req.request())
        && let Ok(Some(t)) = crate::service::auth::csrf_for(&state.ctx, &token).await
    {
        wanted.push(t);
    }
    if let Some(pre) = session::pre_token_of(req.request()) {
        wanted.push(crate::service::auth::pre_auth_csrf(&state.ctx, &pre));
    }
    if wanted.is_empty() {
        return Err(Forgery("no session"));
    }
    let matches = |t: &str| wanted.iter().any(|w| ct_eq(t.as_bytes(), w.as_bytes()));
    if let Some(h) = header("x-csrf-token") {
        return if matches(&h) {
            Ok(())
        } else {
            Err(Forgery("bad token header"))
        };
    }
    // A plain form: read the body, find the field, then put the body back for the handler.
    let is_form = req.content_type() == "application/x-www-form-urlencoded";
    if !is_form {
        return Err(Forgery("no token"));
    }
    let body = read_limited(req, FORM_LIMIT).await?;
    let found = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.to_string());
    put_back(req, body);
    match found {
        Some(t) if matches(&t) => Ok(()),
        _ => Err(Forgery("bad or missing form token")),
    }
}

/// Reads the whole body, up to `limit` bytes.
async fn read_limited(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, Refusal> {
    use futures_util::StreamExt;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Refusal::Forgery("unreadable body"))?;
        if body.len() + chunk.len() > limit {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Hands a body that was read back to the handler (and to the step-up middleware).
pub fn put_back(req: &mut ServiceRequest, body: web::Bytes) {
    req.extensions_mut().insert(FormBody(body.clone()));
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(body);
    req.set_payload(payload.into());
}
