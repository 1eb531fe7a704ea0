//! The start page for signed-in people, and each tenant's start page.

use actix_web::{HttpResponse, web};
use maud::html;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use crate::app::AppState;
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
    let _ = &state;
    let content = html! {
        main {
            h1 { "Dashboard" }
            p { "Welcome, " (cu.user.first_name) "." }
            h2 { "Tenants" }
            table {
                thead { tr { th { "Tenant" } th { "Kind" } th { "Status" } } }
                tbody {
                    @for t in &cu.tenants {
                        tr {
                            td { a href=(format!("/t/{}/", t.slug)) { (t.name) } }
                            td { (t.kind.as_str()) }
                            td { (if t.active { "active" } else { "disabled" }) }
                        }
                    }
                }
            }
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
    let t = service::tenants::resolve(&state.ctx, &cu.principal, &slug, &cu.origin).await?;
    let perms = cu.principal.permissions_in(&t).unwrap_or_default();
    let content = html! {
        main {
            h1 { (t.name) }
            p.muted { "Tenant " code { (t.slug) } " · " (t.kind.as_str()) }
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
