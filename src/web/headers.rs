//! One middleware around every portal and API response: a request id, the security headers
//! (WEB-03) on successes and errors alike, request metrics, and a last-resort 500 for panics.

use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error as ActixError, HttpMessage, ResponseError};
use futures_util::FutureExt;

use super::error::WebError;
use crate::error::Error;
pub use crate::http::request_id::{CURRENT_REQUEST_ID, RequestId, current_request_id};

/// Strict CSP: scripts only from our own embedded assets; no inline script, no eval (WEB-03).
/// Violations are reported to /csp-report, which logs and counts them.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; report-uri /csp-report";

pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

tokio::task_local! {
    /// Whether the request came from htmx (errors then answer with a fragment).
    pub static IS_HTMX: bool;
}

pub fn is_htmx() -> bool {
    IS_HTMX.try_with(|b| *b).unwrap_or(false)
}

pub struct Guard;

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
        }))
    }
}

pub struct GuardService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if req.conn_data::<super::connections::OverCap>().is_some() {
            let mut res = actix_web::HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "30"))
                .content_type("text/plain")
                .body("too many connections from your address\n");
            res.head_mut()
                .set_connection_type(actix_http::ConnectionType::Close);
            return Box::pin(async move { Ok(req.into_response(res)) });
        }
        let late = body_deadline(&mut req);
        let id = uuid::Uuid::now_v7().simple().to_string();
        req.extensions_mut().insert(RequestId(id.clone()));
        let method = req.method().to_string();
        let started = crate::clock::monotonic();
        let svc = self.service.clone();
        let htmx = req.headers().get("hx-request").is_some_and(|v| v == "true");
        Box::pin(async move {
            // Routing runs inside `call` and the handler inside its future: catch panics in both.
            let outcome = CURRENT_REQUEST_ID
                .scope(
                    id.clone(),
                    IS_HTMX.scope(htmx, async move {
                        let answered = match std::panic::catch_unwind(AssertUnwindSafe(|| {
                            svc.call(req)
                        })) {
                            Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.map_err(|_| ()),
                            Err(_) => Err(()),
                        };
                        match answered {
                            // A refusal is audited once, here (super::refusals).
                            Ok(Ok(res)) if matches!(res.status().as_u16(), 403 | 404) => {
                                Ok(Ok(super::refusals::audit(res.map_into_boxed_body()).await))
                            }
                            Ok(Ok(res)) => Ok(Ok(res.map_into_boxed_body())),
                            Ok(Err(e)) => Ok(Err(e)),
                            Err(()) => Err(()),
                        }
                    }),
                )
                .await;
            match outcome {
                Ok(Ok(mut res)) => {
                    // A body that did not arrive in time: answered, and the connection closed.
                    if late.get() {
                        res.response_mut()
                            .head_mut()
                            .set_connection_type(actix_http::ConnectionType::Close);
                    }
                    let route = res
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_string());
                    record(&method, &route, res.status().as_u16(), started);
                    decorate(res.headers_mut(), &id);
                    Ok(res.map_into_boxed_body())
                }
                // Without the request we cannot build a ServiceResponse; hand actix a finished
                // response (headers included) to send as is.
                Ok(Err(e)) => {
                    let mut r = e.error_response();
                    record(&method, "unmatched", r.status().as_u16(), started);
                    decorate(r.headers_mut(), &id);
                    Err(InternalError::from_response(e.to_string(), r).into())
                }
                Err(()) => {
                    tracing::error!(request_id = %id, "handler panicked");
                    let mut r = CURRENT_REQUEST_ID.sync_scope(id.clone(), || {
                        WebError(Error::internal("handler panicked")).error_response()
                    });
                    record(&method, "unmatched", 500, started);
                    decorate(r.headers_mut(), &id);
                    Err(InternalError::from_response("handler panicked", r).into())
                }
            }
        })
    }
}

/// WEB-06: the whole body must arrive within `server.body_timeout_secs` of the request's
/// start; a body trickled slower fails (the answer is an error and the connection closes),
/// so a slow client cannot hold a worker and a connection open for ever.
fn body_deadline(req: &mut ServiceRequest) -> Rc<std::cell::Cell<bool>> {
    use futures_util::StreamExt;
    let late = Rc::new(std::cell::Cell::new(false));
    let flag = late.clone();
    let secs = req
        .app_data::<actix_web::web::Data<crate::http::AppState>>()
        .map(|s| s.ctx.cfg.server.body_timeout_secs)
        .unwrap_or(30);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs.max(1));
    let payload = req.take_payload();
    let timed = futures_util::stream::unfold(Some(payload), move |p| {
        let flag = flag.clone();
        async move {
            let mut p = p?;
            match tokio::time::timeout_at(deadline, p.next()).await {
                Ok(Some(item)) => Some((item, Some(p))),
                Ok(None) => None,
                Err(_) => {
                    flag.set(true);
                    Some((
                        Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body did not arrive in time",
                        ))),
                        None,
                    ))
                }
            }
        }
    });
    let boxed: actix_http::BoxedPayloadStream = Box::pin(timed);
    req.set_payload(actix_web::dev::Payload::from(boxed));
    late
}

fn record(method: &str, route: &str, status: u16, started: std::time::Instant) {
    metrics::counter!("hourglass_http_requests_total", "method" => method.to_string(), "route" => route.to_string(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("hourglass_http_request_duration_seconds", "method" => method.to_string(), "route" => route.to_string())
        .record(started.elapsed().as_secs_f64());
}

/// The WEB-03 set, the request id, and no-store unless a handler chose caching (assets only).
fn decorate(h: &mut actix_web::http::header::HeaderMap, id: &str) {
    for (name, value) in SECURITY_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.remove(header::SERVER);
}
