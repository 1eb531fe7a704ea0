//! One middleware around every portal and API response: a request id, the security headers
//! (WEB-03) on successes and errors alike, request metrics, and a last-resort 500 for panics.

use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error as ActixError, HttpMessage, ResponseError};
use futures_util::FutureExt;

use super::error::WebError;
use crate::error::Error;

/// Strict CSP: scripts only from our own embedded assets; no inline script, no eval (WEB-03).
/// Violations are reported to /csp-report, which logs and counts them.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; report-uri /csp-report";

pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
];

/// The id of the request being served, in request extensions and the `X-Request-Id` header.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

tokio::task_local! {
    /// Lets error rendering echo the request id without threading it through every handler.
    pub static CURRENT_REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
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
        ready(Ok(GuardService { service: Rc::new(service) }))
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

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = uuid::Uuid::now_v7().simple().to_string();
        req.extensions_mut().insert(RequestId(id.clone()));
        let http_req = req.request().clone();
        let method = req.method().to_string();
        let started = crate::clock::monotonic();
        let svc = self.service.clone();
        let fut = CURRENT_REQUEST_ID.scope(id.clone(), async move {
            match AssertUnwindSafe(svc.call(req)).catch_unwind().await {
                Ok(Ok(res)) => res.map_into_boxed_body(),
                Ok(Err(e)) => ServiceResponse::new(http_req, e.error_response()),
                Err(_) => {
                    tracing::error!("handler panicked");
                    ServiceResponse::new(http_req, WebError(Error::internal("handler panicked")).error_response())
                }
            }
        });
        Box::pin(async move {
            let mut res = CURRENT_REQUEST_ID.scope(id.clone(), fut).await;
            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
            let status = res.status().as_u16();
            metrics::counter!("hourglass_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
            metrics::histogram!("hourglass_http_request_duration_seconds", "method" => method, "route" => route)
                .record(started.elapsed().as_secs_f64());
            let h = res.headers_mut();
            for (name, value) in SECURITY_HEADERS {
                h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            if let Ok(v) = HeaderValue::from_str(&id) {
                h.insert(HeaderName::from_static("x-request-id"), v);
            }
            // Only the embedded assets may be cached; everything else can carry private data.
            if !h.contains_key(header::CACHE_CONTROL) {
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            h.remove(header::SERVER);
            Ok(res)
        })
    }
}
