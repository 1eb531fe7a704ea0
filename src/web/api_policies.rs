//! Application elevation policies in the management API: CRUD and "test a decision".

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiResult, ApiUser, tenant};
use crate::error::Error;
use crate::http::AppState;
use crate::model::policies::App;
use crate::service;
use crate::service::policies::PolicyInput;

pub async fn list(state: web::Data<AppState>, u: ApiUser, slug: web::Path<String>) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let ps = service::policies::list(&state.ctx, &u.principal, &t).await?;
    Ok(HttpResponse::Ok().json(json!({"policies": ps})))
}

pub async fn create(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<PolicyInput>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let p = service::policies::save(
        &state.ctx,
        &u.principal,
        &t,
        None,
        body.into_inner(),
        &u.origin,
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
    let p = service::policies::get(&state.ctx, &u.principal, &t, &id).await?;
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
    let p = service::policies::save(
        &state.ctx,
        &u.principal,
        &t,
        Some(id),
        body.into_inner(),
        &u.origin,
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
    service::policies::delete(&state.ctx, &u.principal, &t, &id, &u.origin).await?;
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
    let d =
        service::policies::test(&state.ctx, &u.principal, &t, &b.device_id, &b.user, b.app).await?;
    Ok(HttpResponse::Ok().json(d))
}

/// `GET /api/v1/tenants/{slug}/policies/export`: the tenant's policies as a file.
pub async fn export(state: web::Data<AppState>, u: ApiUser, slug: web::Path<String>) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let f = service::policy_files::export(&state.ctx, &u.principal, &t).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"policies-{}.json\"", t.slug),
        ))
        .json(f))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    /// `merge` (default: create and update by name) or `replace` (also delete the rest).
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /api/v1/tenants/{slug}/policies/import[?dry_run=true&mode=replace]`: the plan, and
/// unless a dry run, applied. Read as raw bytes: a file may exceed the 64 KiB JSON limit.
pub async fn import(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    q: web::Query<ImportQuery>,
    body: web::Bytes,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let replace = match q.mode.as_deref().unwrap_or("merge") {
        "merge" => false,
        "replace" => true,
        _ => {
            return Err(Error::validation("mode", "must be merge or replace").into());
        }
    };
    let file: service::policy_files::PolicyFile = serde_json::from_slice(&body)
        .map_err(|e| Error::validation("body", format!("not a policy file: {e}")))?;
    let plan = service::policy_files::import(
        &state.ctx,
        &u.principal,
        &t,
        file,
        replace,
        q.dry_run,
        &u.origin,
    )
    .await?;
    Ok(HttpResponse::Ok().json(plan))
}
