//! The management API for workstations and their requests: enrollment tokens, devices,
//! requests (approve, deny, revoke) and auto-approval rules.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult, ApiUser, body_or_default, tenant};
use crate::error::Error;
use crate::http::AppState;
use crate::model::requests::Grant;
use crate::service;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    hours: Option<u32>,
    uses: Option<u32>,
}

fn device_json(
    ctx: &service::Ctx,
    d: &crate::model::devices::Device,
    now: crate::clock::Timestamp,
) -> serde_json::Value {
    json!({"id": d.id, "hostname": d.hostname, "os": d.os, "os_version": d.os_version, "agent_version": d.agent_version,
        "agent_hash": d.agent_hash, "status": if d.active { "active" } else { "retired" }, "online": service::devices::is_online(ctx, d, now),
        "last_seen_at": d.last_seen_at.rfc3339(), "enrolled_at": d.enrolled_at.rfc3339(), "admin_members": d.admin_members})
}

pub async fn enrollment_token_create(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<NewEnrollmentToken>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let n = service::devices::NewToken {
        hours: body.hours.unwrap_or(24),
        uses: body.uses.unwrap_or(1),
    };
    let base = super::devices::base_url(&state);
    let (tok, secret, command) =
        service::devices::create_token(&state.ctx, &u.principal, &t, n, &base, &u.origin).await?;
    Ok(HttpResponse::Created().json(json!({"id": tok.id, "token": secret, "command": command.linux, "windows_command": command.windows, "expires_at": tok.expires_at.rfc3339(), "uses": tok.uses_left})))
}

pub async fn devices_list(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let ds = service::devices::list(&state.ctx, &u.principal, &t).await?;
    let now = state.ctx.clock.now();
    Ok(HttpResponse::Ok().json(
        json!({"devices": ds.iter().map(|d| device_json(&state.ctx, d, now)).collect::<Vec<_>>()}),
    ))
}

pub async fn device_get(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let Some(id) = crate::ids::DeviceId::parse(&id) else {
        return Err(ApiError(Error::NotFound));
    };
    let (d, commands, events) = service::devices::detail(&state.ctx, &u.principal, &t, id).await?;
    let mut v = device_json(&state.ctx, &d, state.ctx.clock.now());
    v["commands"] = json!(commands.iter().map(|c| json!({"id": c.id, "seq": c.seq, "kind": c.kind.as_str(), "state": c.state.as_str(), "issued_at": c.issued_at.rfc3339(), "details": c.details})).collect::<Vec<_>>());
    v["events"] = json!(events.iter().map(|e| json!({"id": e.event_id, "kind": e.kind, "at": e.at.rfc3339(), "data": serde_json::from_str::<serde_json::Value>(&e.data).unwrap_or_default()})).collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    state: Option<String>,
    /// An account, workstation host name or ticket.
    who: Option<String>,
}

pub async fn requests_list(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    q: web::Query<RequestsQuery>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let rs = service::requests::list(&state.ctx, &u.principal, &t, {
        let q = q.into_inner();
        service::requests::Filter {
            state: q.state.filter(|s| !s.is_empty()),
            who: q
                .who
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty()),
        }
    })
    .await?;
    let names = deciders(&state.ctx, &rs).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"requests": rs.iter().map(|r| request_json(r, &names)).collect::<Vec<_>>()})))
}

/// A request as the management API shows it: what the workstation is told, plus what the
/// portal shows (justification, the device, the times, who decided by name and id).
fn request_json(
    r: &crate::model::requests::Request,
    names: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    let mut v = crate::http::request_view(r);
    let ms = |t: Option<crate::clock::Timestamp>| t.map(|t| t.millis());
    let decided_by = match (&r.decided_by, &r.decided_by_rule) {
        (Some(u), _) => {
            let id = u.to_string();
            json!({"kind": "person", "name": names.get(&id), "id": id})
        }
        (None, Some(rule)) => json!({"kind": "rule", "id": rule, "name": names.get(rule)}),
        (None, None) => serde_json::Value::Null,
    };
    if let Some(o) = v.as_object_mut() {
        for (k, x) in [
            ("justification", json!(r.justification)),
            ("device", json!({"id": r.device_id, "hostname": r.hostname})),
            ("created_at", json!(r.created_at.millis())),
            ("decided_at", json!(ms(r.decided_at))),
            ("granted_at", json!(ms(r.granted_at))),
            ("ended_at", json!(ms(r.ended_at))),
            ("decided_by", decided_by),
            ("failure", json!(r.failure)),
        ] {
            o.insert(k.to_string(), x);
        }
    }
    v
}

/// The names of the people and rules that decided `rs`.
async fn deciders(
    ctx: &service::Ctx,
    rs: &[crate::model::requests::Request],
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let ids = rs
        .iter()
        .flat_map(|r| {
            [
                r.decided_by.map(|u| u.to_string()),
                r.decided_by_rule.clone(),
            ]
        })
        .flatten()
        .collect();
    Ok(service::audit::labels(ctx, ids).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    duration_minutes: Option<i64>,
    reason: Option<String>,
    /// Application requests: `once` (default), `user`, `device` or `tenant`.
    grant: Option<String>,
}

pub async fn request_action(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> ApiResult {
    let (slug, id, verb) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    let Some(id) = crate::ids::RequestId::parse(&id) else {
        return Err(ApiError(Error::NotFound));
    };
    let b: Decision = body_or_default(&body)?;
    let r = match verb.as_str() {
        "approve" => {
            let grant = Grant::parse(b.grant.as_deref().unwrap_or("once"))?;
            service::requests::approve(
                &state.ctx,
                &u.principal,
                &t,
                id,
                b.duration_minutes,
                grant,
                &u.origin,
            )
            .await
        }
        "deny" => {
            service::requests::deny(
                &state.ctx,
                &u.principal,
                &t,
                id,
                b.reason.as_deref().unwrap_or(""),
                &u.origin,
            )
            .await
        }
        "revoke" => service::requests::revoke(&state.ctx, &u.principal, &t, id, &u.origin).await,
        _ => return Err(ApiError(Error::NotFound)),
    };
    let r = r?;
    let names = deciders(&state.ctx, std::slice::from_ref(&r)).await?;
    Ok(HttpResponse::Ok().json(request_json(&r, &names)))
}

pub async fn rules_list(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let rs = service::requests::rules_of(&state.ctx, &u.principal, &t).await?;
    Ok(HttpResponse::Ok().json(json!({"rules": rs})))
}

pub async fn rules_create(
    state: web::Data<AppState>,
    u: ApiUser,
    slug: web::Path<String>,
    body: web::Json<service::requests::NewRule>,
) -> ApiResult {
    let t = tenant(&state, &u, &slug).await?;
    let r =
        service::requests::create_rule(&state.ctx, &u.principal, &t, body.into_inner(), &u.origin)
            .await?;
    Ok(HttpResponse::Created().json(r))
}

pub async fn rules_delete(
    state: web::Data<AppState>,
    u: ApiUser,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (slug, id) = path.into_inner();
    let t = tenant(&state, &u, &slug).await?;
    service::requests::delete_rule(&state.ctx, &u.principal, &t, &id, &u.origin).await?;
    Ok(HttpResponse::NoContent().finish())
}
