//! The start page for signed-in people, and each tenant's start page.

use actix_web::{HttpResponse, web};
use maud::html;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use crate::http::AppState;
use crate::service;

/// `/`: signed in → the dashboard; otherwise the sign-in page.
pub async fn index(
    state: web::Data<AppState>,
    cu: Option<CurrentUser>,
) -> Result<HttpResponse, WebError> {
    let Some(cu) = cu else {
        return Ok(HttpResponse::SeeOther()
            .insert_header(("Location", "/login"))
            .finish());
    };
    let counts = service::requests::counts(&state.ctx, &cu.principal, &cu.tenants).await?;
    let count = |t: &crate::model::tenants::Tenant| {
        counts.iter().find(|c| c.0.id == t.id).map(|c| (c.1, c.2))
    };
    let (pending, active): (i64, i64) = counts.iter().fold((0, 0), |a, c| (a.0 + c.1, a.1 + c.2));
    let content = html! {
        main {
            h1 { "Dashboard" }
            p { "Welcome, " (cu.user.first_name) "." }
            div.cards {
                a.card.stat #pending-count href="/requests" { strong { (pending) } " requests waiting for a decision" }
                div.card.stat #active-count { strong { (active) } " active admin sessions" }
            }
            h2 { "Tenants" }
            div.table-wrap tabindex="0" { table {
                thead { tr { th { "Tenant" } th { "Kind" } th { "Status" } th { "Waiting" } th { "Active sessions" } } }
                tbody {
                    @if !cu.tenants.iter().any(|t| t.kind == crate::model::tenants::TenantKind::Customer) && cu.principal.is_msp_admin() {
                        tr { td.empty colspan="5" { "No customers yet — " a href="/tenants" { "create one" } ", then add its workstations." } }
                    }
                    @for t in &cu.tenants {
                        tr data-tenant=(t.slug) {
                            td { a href=(format!("/t/{}/", t.slug)) { (t.name) } }
                            td { (if t.kind == crate::model::tenants::TenantKind::Msp { "your MSP" } else { "customer" }) }
                            td { (if t.active { "active" } else { "disabled" }) }
                            @if let Some((p, a)) = count(t) {
                                td.pending { a href=(format!("/t/{}/requests", t.slug)) { (p) } } td.active { (a) }
                            } @else { td {} td {} }
                        }
                    }
                }
            } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        None,
        "dashboard",
        "Dashboard",
        content,
    )))
}

pub async fn tenant_home(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let perms = cu.principal.permissions_in(&t).unwrap_or_default();
    let content = html! {
        main {
            h1 { (t.name) }
            p.muted { "Tenant " code { (t.slug) } " · " (t.kind.as_str()) }
            @if let Some((_, p, a)) = service::requests::counts(&state.ctx, &cu.principal, std::slice::from_ref(&t)).await?.first() {
                div.cards {
                    a.card.stat #pending-count href=(format!("/t/{}/requests", t.slug)) { strong { (p) } " requests waiting for a decision" }
                    div.card.stat #active-count { strong { (a) } " active admin sessions" }
                }
            }
            h2 { "Your permissions here" }
            ul { @for p in perms.iter() { li { code { (p.code()) } } } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "home",
        &t.name,
        content,
    )))
}
