//! `/agent/v1`: the JSON API agents call. Devices authenticate with their id and secret;
//! errors are `{"code","message"}`; bodies are small (events ≤ 1 MiB per batch).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, dev::Payload, web,
};
use serde_json::json;

use crate::error::Error;
use crate::http::AppState;
use crate::http::request_id::RequestId;
use crate::http::request_view;
use crate::ids::{CommandId, DeviceId};
use crate::model::devices::{Device, DeviceKey};
use crate::proto::{self, AckRequest, EnrollRequest, EventsRequest, PollRequest};
use crate::service::{self, audit::Origin};

#[derive(Debug)]
pub struct AgentError(pub Error);

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Error> for AgentError {
    fn from(e: Error) -> Self {
        AgentError(e)
    }
}

impl ResponseError for AgentError {
    fn status_code(&self) -> StatusCode {
        crate::http::status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        let message = match &self.0 {
            e if e.is_internal() => {
                tracing::error!(error = %e, "agent request failed");
                format!(
                    "internal error (request {})",
                    crate::http::request_id::current_request_id().unwrap_or_default()
                )
            }
            Error::Unauthenticated => {
                "unknown device, wrong secret, retired device or invalid enrollment token".into()
            }
            e => e.to_string(),
        };
        HttpResponse::build(self.status_code()).json(proto::ErrorBody {
            code: self.0.code().into(),
            message,
        })
    }
}

type AgentResult = Result<HttpResponse, AgentError>;

fn origin(req: &HttpRequest) -> Origin {
    Origin {
        ip: crate::http::client_ip(req),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// The calling device: `X-Device-Id` and `Authorization: Bearer <device secret>`.
pub struct DeviceAuth(pub Device);

impl FromRequest for DeviceAuth {
    type Error = AgentError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (state, id, secret) = credentials(&req)?;
            Ok(DeviceAuth(
                service::devices::authenticate(&state.ctx, id, &secret, &origin(&req)).await?,
            ))
        })
    }
}

/// The polling device, known from memory (the poll needs only its id and tenant).
pub struct PollAuth(pub DeviceKey);

impl FromRequest for PollAuth {
    type Error = AgentError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (state, id, secret) = credentials(&req)?;
            Ok(PollAuth(
                service::devices::authenticate_key(&state.ctx, id, &secret, &origin(&req)).await?,
            ))
        })
    }
}

/// The app state, `X-Device-Id` and the bearer secret of an agent call.
fn credentials(req: &HttpRequest) -> Result<(web::Data<AppState>, DeviceId, String), AgentError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(AgentError(Error::internal("no state")))?
        .clone();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = header("x-device-id")
        .and_then(|v| DeviceId::parse(&v))
        .ok_or(AgentError(Error::Unauthenticated))?;
    let secret = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(|s| s.trim().to_string()))
        .ok_or(AgentError(Error::Unauthenticated))?;
    Ok((state, id, secret))
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _| {
            let err = match &e {
                actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                    return actix_web::error::InternalError::from_response(
                        e.to_string(),
                        HttpResponse::PayloadTooLarge().json(proto::ErrorBody {
                            code: "too_large".into(),
                            message: e.to_string(),
                        }),
                    )
                    .into();
                }
                other => Error::validation("body", other),
            };
            AgentError(err).into()
        })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/agent/v1")
            .app_data(json_config(proto::MAX_BODY_BYTES))
            .service(web::resource("/openapi.json").route(web::get().to(openapi)))
            .service(web::resource("/enroll").route(web::post().to(enroll)))
            .service(web::resource("/poll").route(web::post().to(poll)))
            .service(web::resource("/secret").route(web::post().to(secret)))
            .service(web::resource("/commands/{id}/ack").route(web::post().to(ack)))
            .service(
                web::resource("/events")
                    .app_data(json_config(proto::MAX_EVENT_BATCH_BYTES))
                    .route(web::post().to(events)),
            )
            .service(web::resource("/requests").route(web::post().to(request_create)))
            .service(web::resource("/requests/{id}").route(web::get().to(request_get)))
            .service(web::resource("/requests/{id}/end").route(web::post().to(request_end)))
            .service(web::resource("/decide").route(web::post().to(decide)))
            .default_service(web::to(|| async {
                AgentError(Error::NotFound).error_response()
            })),
    );
}

/// Agent routes, for the route-table tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/agent/v1/openapi.json"),
    ("post", "/agent/v1/enroll"),
    ("post", "/agent/v1/poll"),
    ("post", "/agent/v1/secret"),
    ("post", "/agent/v1/commands/{id}/ack"),
    ("post", "/agent/v1/events"),
    ("post", "/agent/v1/requests"),
    ("get", "/agent/v1/requests/{id}"),
    ("post", "/agent/v1/requests/{id}/end"),
    ("post", "/agent/v1/decide"),
];

async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<EnrollRequest>,
) -> AgentResult {
    let r = service::devices::enroll(&state.ctx, body.into_inner(), &origin(&req)).await?;
    Ok(HttpResponse::Created().json(r))
}

async fn poll(
    state: web::Data<AppState>,
    PollAuth(d): PollAuth,
    body: web::Json<PollRequest>,
) -> AgentResult {
    Ok(HttpResponse::Ok().json(service::commands::poll(&state.ctx, &d, body.into_inner()).await?))
}

/// A new device secret, given to the agent that asks with its current one.
async fn secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
) -> AgentResult {
    let device_secret = service::devices::rotate_secret(&state.ctx, &d, &origin(&req)).await?;
    Ok(HttpResponse::Ok().json(proto::SecretResponse { device_secret }))
}

async fn ack(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
    id: web::Path<String>,
    body: web::Json<AckRequest>,
) -> AgentResult {
    let id = CommandId::parse(&id).ok_or(AgentError(Error::NotFound))?;
    service::commands::ack(&state.ctx, &d, id, body.into_inner(), &origin(&req)).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true})))
}

async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
    body: web::Json<EventsRequest>,
) -> AgentResult {
    Ok(HttpResponse::Ok()
        .json(service::commands::events(&state.ctx, &d, body.into_inner(), &origin(&req)).await?))
}

async fn request_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
    body: web::Json<service::requests::Ask>,
) -> AgentResult {
    let r = service::requests::create(&state.ctx, &d, body.into_inner(), &origin(&req)).await?;
    Ok(HttpResponse::Created().json(request_view(&r)))
}

async fn request_get(
    state: web::Data<AppState>,
    DeviceAuth(d): DeviceAuth,
    id: web::Path<String>,
) -> AgentResult {
    let id = crate::ids::RequestId::parse(&id).ok_or(AgentError(Error::NotFound))?;
    Ok(HttpResponse::Ok().json(request_view(
        &service::requests::get_for_device(&state.ctx, d.id, id).await?,
    )))
}

async fn request_end(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
    id: web::Path<String>,
) -> AgentResult {
    let id = crate::ids::RequestId::parse(&id).ok_or(AgentError(Error::NotFound))?;
    Ok(HttpResponse::Ok().json(request_view(
        &service::requests::end_by_device(&state.ctx, &d, id, &origin(&req)).await?,
    )))
}

/// May this user run this program elevated here? The device's own tenant's policies decide.
async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    DeviceAuth(d): DeviceAuth,
    body: web::Json<service::policies::DecideRequest>,
) -> AgentResult {
    Ok(HttpResponse::Ok()
        .json(service::policies::decide(&state.ctx, &d, body.into_inner(), &origin(&req)).await?))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("openapi.json"))
}
