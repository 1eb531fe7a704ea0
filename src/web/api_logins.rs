//! Technician logins in the management API: start (the password once), list, end.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult, ApiUser, body_or_default, tenant};
use crate::error::Error;
use crate::http::AppState;
use crate::ids::{DeviceId, LoginId};
use crate::model::logins::Login;
use crate::service;

fn login_json(l: &Login) -> serde_json::Value {
    json!({"id": l.id, "device_id": l.device_id, "hostname": l.hostname, "user_id": l.user_id,
        "account": l.account, "state": l.state.as_str(), "minutes": l.minutes, "ticket": l.ticket,
        "created_at": l.created_at.rfc3339(), "started_at": l.started_at.map(|t| t.rfc3339()),
        "expires_at": l.expires_at.rfc3339(), "ended_at": l.ended_at.map(|t| t.rfc3339())})
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default)]
    duration_minutes: Option<i64>,
    #[serde(default)]
    ticket: Option<String>,
}

/// `POST /api/v1/tenants/{slug}/devices/{id}/logins`: the account and its password, once.
pub async fn start(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let Some(device) = DeviceId::parse(&id) else {
        return Err(ApiError(Error::NotFound));
    };
    let b: StartBody = body_or_default(&body)?;
    let ctx = &state.ctx;
    let l = service::logins::start(
        ctx,
        &u.principal,
        &t,
        device,
        b.duration_minutes,
        b.ticket,
        &u.origin,
    )
    .await?;
    let (l, password) = service::logins::reveal(ctx, &u.principal, &t, l.id, &u.origin).await?;
    let mut v = login_json(&l);
    v["password"] = json!(password.as_str());
    Ok(HttpResponse::Created().json(v))
}

pub async fn list(state: web::Data<AppState>, u: ApiUser, slug: web::Path<String>) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let ls = service::logins::list(&state.ctx, &u.principal, &t, None).await?;
    Ok(HttpResponse::Ok().json(json!({"logins": ls.iter().map(login_json).collect::<Vec<_>>()})))
}

/// `POST /api/v1/tenants/{slug}/logins/{id}/end`: one's own (ended) or another's (revoked).
pub async fn end(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let Some(id) = LoginId::parse(&id) else {
        return Err(ApiError(Error::NotFound));
    };
    let l = service::logins::end(&state.ctx, &u.principal, &t, id, &u.origin).await?;
    Ok(HttpResponse::Ok().json(login_json(&l)))
}
