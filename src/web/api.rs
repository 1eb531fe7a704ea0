//! Management API `/api/v1` (JSON, bearer tokens acting as their user). Errors are
//! `{"code": "…", "message": "…"}`; a foreign tenant's object is 404, like a missing one.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::headers::current_request_id;
use super::session::origin_of;
use crate::authz::{Permission, Principal};
use crate::error::Error;
use crate::http::AppState;
use crate::ids::UserId;
use crate::model::tenants::{LoginMode, Settings, Tenant};
use crate::service::{self, audit::Origin, users::Action};

#[derive(Debug)]
pub struct ApiError(pub Error);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        super::error::status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        let message = match &self.0 {
            e if e.is_internal() => {
                tracing::error!(error = %e, "api request failed");
                format!(
                    "internal error (request {})",
                    current_request_id().unwrap_or_default()
                )
            }
            Error::NotFound => "not found".to_string(),
            e => e.to_string(),
        };
        HttpResponse::build(self.status_code())
            .json(json!({"code": self.0.code(), "message": message}))
    }
}

pub(super) type ApiResult = Result<HttpResponse, ApiError>;

/// The caller: `Authorization: Bearer <token>`.
pub struct ApiUser {
    pub principal: Principal,
    pub origin: Origin,
    pub acting: std::rc::Rc<super::refusals::Acting>,
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or(ApiError(Error::internal("no state")))?
                .clone();
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError(Error::Unauthenticated))?
                .trim()
                .to_string();
            let principal = service::auth::api_principal(&state.ctx, &token).await?;
            let origin = origin_of(&req);
            let acting = super::refusals::Acting::attach(&req, &principal, &origin);
            Ok(ApiUser {
                principal,
                origin,
                acting,
            })
        })
    }
}

#[derive(Serialize)]
struct TenantJson<'a> {
    id: String,
    name: &'a str,
    slug: &'a str,
    kind: &'a str,
    active: bool,
    settings: &'a Settings,
}

fn tenant_json(t: &Tenant) -> serde_json::Value {
    json!(TenantJson {
        id: t.id.to_string(),
        name: &t.name,
        slug: t.slug.as_str(),
        kind: t.kind.as_str(),
        active: t.active,
        settings: &t.settings
    })
}

/// An optional JSON body: empty means the defaults; anything else must parse (a clear 422
/// naming the problem, never silently defaulted).
pub(super) fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    body: &web::Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::validation("body", format!("not valid here: {e}"))))
}

pub(super) async fn tenant(state: &AppState, u: &ApiUser, slug: &str) -> Result<Tenant, ApiError> {
    Ok(u.acting.tenant(state, slug).await?)
}

pub async fn tenants_list(state: web::Data<AppState>, u: ApiUser) -> ApiResult {
    let ts = service::tenants::visible(&state.ctx, &u.principal).await?;
    Ok(HttpResponse::Ok().json(json!({"tenants": ts.iter().map(tenant_json).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
    #[serde(default)]
    slug: String,
}

pub async fn tenants_create(
    state: web::Data<AppState>,
    u: ApiUser,
    body: web::Json<NewTenant>,
) -> ApiResult {
    let b = body.into_inner();
    u.acting.appliance_level();
    match service::tenants::create(
        &state.ctx,
        &u.principal,
        service::tenants::NewTenant {
            name: b.name,
            slug: b.slug,
        },
        &u.origin,
    )
    .await
    {
        Ok(t) => Ok(HttpResponse::Created().json(tenant_json(&t))),
        Err(e) => Err(e.into()),
    }
}

pub async fn tenant_get(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    u.principal
        .scope(&t, Permission::SettingsView)
        .map(|_| ())?;
    Ok(HttpResponse::Ok().json(tenant_json(&t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    name: Option<String>,
    slug: Option<String>,
    active: Option<bool>,
    co_management: Option<bool>,
    login_mode: Option<LoginMode>,
    acknowledge_shared: Option<bool>,
    jit_enabled: Option<bool>,
    jit_justification_required: Option<bool>,
    jit_max_minutes: Option<u32>,
    jit_pending_timeout_minutes: Option<u32>,
    seats: Option<u32>,
    time_zone: Option<String>,
    offline_login_minutes: Option<u32>,
    silence_alert_minutes: Option<u32>,
    remove_standing_admins: Option<bool>,
    standing_admin_exceptions: Option<Vec<String>>,
}

pub async fn tenant_update(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<TenantPatch>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let p = body.into_inner();
    let s0 = &t.settings;
    let settings = Settings {
        co_management: p.co_management.unwrap_or(s0.co_management),
        login_mode: p.login_mode.unwrap_or(s0.login_mode),
        jit_enabled: p.jit_enabled.unwrap_or(s0.jit_enabled),
        jit_justification_required: p
            .jit_justification_required
            .unwrap_or(s0.jit_justification_required),
        jit_max_minutes: p.jit_max_minutes.unwrap_or(s0.jit_max_minutes),
        jit_pending_timeout_minutes: p
            .jit_pending_timeout_minutes
            .unwrap_or(s0.jit_pending_timeout_minutes),
        seats: p.seats.unwrap_or(s0.seats),
        time_zone: p.time_zone.unwrap_or_else(|| s0.time_zone.clone()),
        offline_login_minutes: p.offline_login_minutes.unwrap_or(s0.offline_login_minutes),
        silence_alert_minutes: p.silence_alert_minutes.unwrap_or(s0.silence_alert_minutes),
        remove_standing_admins: p
            .remove_standing_admins
            .unwrap_or(s0.remove_standing_admins),
        standing_admin_exceptions: p
            .standing_admin_exceptions
            .unwrap_or_else(|| s0.standing_admin_exceptions.clone()),
    };
    let upd = service::tenants::TenantUpdate {
        name: p.name,
        slug: p.slug,
        active: p.active,
        settings,
        acknowledge_shared: p.acknowledge_shared.unwrap_or(false),
    };
    let t2 = service::tenants::update(&state.ctx, &u.principal, &t, upd, &u.origin).await?;
    Ok(HttpResponse::Ok().json(tenant_json(&t2)))
}

pub async fn users_list(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let users = service::users::list(&state.ctx, &u.principal, &t).await?;
    let out: Vec<_> = users.iter().map(|(x, roles)| user_json(x, roles)).collect();
    Ok(HttpResponse::Ok().json(json!({"users": out})))
}

/// A person as the API shows them, with their roles, wherever one is answered.
fn user_json(x: &crate::model::users::User, roles: &[String]) -> serde_json::Value {
    json!({"id": x.id, "email": x.email, "first_name": x.first_name, "last_name": x.last_name,
        "username": x.username, "status": x.status.as_str(), "roles": roles})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    first_name: String,
    last_name: String,
    email: String,
    #[serde(default)]
    username: String,
}

pub async fn users_create(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<NewUser>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let b = body.into_inner();
    let new = service::users::NewUser {
        first_name: b.first_name,
        last_name: b.last_name,
        email: b.email,
        username: b.username,
    };
    let c = service::users::create(&state.ctx, &u.principal, &t, new, &u.origin).await?;
    let link = super::users::link_url(&state, &format!("/enroll/{}", c.enrollment_token));
    let mailed = service::users::mail_enrollment(&state.ctx, &c.user, &t, &link);
    let mut out = user_json(&c.user, &[]);
    out["enrollment_link"] = json!(link);
    out["mailed"] = json!(mailed);
    Ok(HttpResponse::Created().json(out))
}

pub async fn user_action(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String, String)>,
) -> ApiResult {
    let (slug, id, verb) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let Some(id) = UserId::parse(&id) else {
        return Err(ApiError(Error::NotFound));
    };
    let action = match verb.as_str() {
        "make-admin" => Action::MakeAdmin,
        "disable" => Action::Disable,
        "enable" => Action::Enable,
        "erase" => Action::Erase,
        "unlock" => Action::Unlock,
        "reset-enrollment" => Action::ResetEnrollment,
        "end-sessions" => Action::EndSessions,
        "pause-mfa-next" => Action::PauseMfa {
            next_login_only: true,
        },
        "pause-mfa-24h" => Action::PauseMfa {
            next_login_only: false,
        },
        _ => return Err(ApiError(Error::NotFound)),
    };
    let link = service::users::act(&state.ctx, &u.principal, &t, id, action, &u.origin)
        .await?
        .map(|tok| super::users::link_url(&state, &format!("/enroll/{tok}")));
    let (user, roles, _, _) = service::users::detail(&state.ctx, &u.principal, &t, id).await?;
    let mut out = user_json(&user, &roles);
    out["enrollment_link"] = json!(link);
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    event: Option<String>,
    actor: Option<String>,
    before: Option<i64>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

pub async fn audit_list(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let scope = u.principal.scope(&t, Permission::AuditView)?;
    let q = q.into_inner();
    let f = service::audit::ListFilter {
        event: q.event,
        actor: q.actor,
        before_seq: q.before,
        since: day(q.from.as_deref(), "from")?,
        until: day(q.to.as_deref(), "to")?.map(|t| t.plus_secs(86_400)),
        limit: q.limit.unwrap_or(100),
    };
    let rows = service::audit::list(&state.ctx, &scope, false, f).await?;
    let out: Vec<_> = rows
        .into_iter()
        .map(|(seq, e)| json!({"seq": seq, "entry": e}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"entries": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExportQuery {
    /// Optional in the type so a foreign tenant answers 404 before the query is judged.
    format: Option<String>,
    event: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/tenants/{slug}/audit/export?format=csv|ndjson`: the tenant's entries, oldest
/// first, as a file (`audit.export`; audited).
pub async fn audit_export(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    q: web::Query<AuditExportQuery>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let scope = u.principal.scope(&t, Permission::AuditExport)?;
    let q = q.into_inner();
    let format = crate::model::audit_export::Format::parse(q.format.as_deref().unwrap_or_default())
        .ok_or_else(|| ApiError(Error::validation("format", "must be csv or ndjson")))?;
    let req = service::audit::ExportRequest {
        scope,
        all_tenants: false,
        filter: service::audit::ListFilter {
            event: q.event.filter(|s| !s.is_empty()),
            actor: q.actor.filter(|s| !s.is_empty()),
            before_seq: None,
            since: day(q.from.as_deref(), "from")?,
            until: day(q.to.as_deref(), "to")?.map(|t| t.plus_secs(86_400)),
            limit: 0,
        },
        format,
    };
    let doc = service::audit::export(&state.ctx, &u.principal, &u.origin, req).await?;
    Ok(super::audit::download(t.slug.as_str(), format, doc))
}

/// The OpenAPI 3 description of this API; a test checks it lists every route.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

pub const OPENAPI: &str = include_str!("openapi.json");

fn day(s: Option<&str>, field: &str) -> Result<Option<crate::clock::Timestamp>, ApiError> {
    match s.filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(s) => crate::clock::Timestamp::parse_date(s)
            .map(Some)
            .ok_or_else(|| ApiError(Error::validation(field, "must be a date like 2026-11-23"))),
    }
}
