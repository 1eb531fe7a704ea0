//! Application elevation policies in the management API: CRUD and "test a decision".

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiResult, ApiUser, denied, tenant};
use crate::app::AppState;
use crate::model::policies::App;
use crate::service;
use crate::service::policies::PolicyInput;

pub async fn list(state: web::Data<AppState>, u: ApiUser, slug: web::Path<String>) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let ps = denied(
        &state,
        &u,
        &t,
        service::policies::list(&state.ctx, &u.principal, &t).await,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"policies": ps})))
}

pub async fn create(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<PolicyInput>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let p = denied(
        &state,
        &u,
        &t,
        service::policies::save(
            &state.ctx,
            &u.principal,
            &t,
            None,
            body.into_inner(),
            &u.origin,
        )
        .await,
    )
    .await?;
    Ok(HttpResponse::Created().json(p))
}

pub async fn get(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let p = denied(
        &state,
        &u,
        &t,
        service::policies::get(&state.ctx, &u.principal, &t, &id).await,
    )
    .await?;
    Ok(HttpResponse::Ok().json(p))
}

pub async fn replace(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
    body: web::Json<PolicyInput>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let p = denied(
        &state,
        &u,
        &t,
        service::policies::save(
            &state.ctx,
            &u.principal,
            &t,
            Some(id),
            body.into_inner(),
            &u.origin,
        )
        .await,
    )
    .await?;
    Ok(HttpResponse::Ok().json(p))
}

pub async fn delete(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    denied(
        &state,
        &u,
        &t,
        service::policies::delete(&state.ctx, &u.principal, &t, &id, &u.origin).await,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    user: String,
    app: App,
}

/// `POST /api/v1/tenants/{slug}/policies/test`: which policy and rule would decide.
pub async fn test(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<TestBody>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let b = body.into_inner();
    let d = denied(
        &state,
        &u,
        &t,
        service::policies::test(&state.ctx, &u.principal, &t, &b.device_id, &b.user, b.app).await,
    )
    .await?;
    Ok(HttpResponse::Ok().json(d))
}
