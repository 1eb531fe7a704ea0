//! Endpoint users in the portal: the local accounts that asked for rights, per workstation,
//! each optionally linked to a user of the tenant (then that person never approves its
//! requests).

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::http::AppState;
use crate::service;

pub async fn page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let eus = service::requests::endpoint_users(&state.ctx, &cu.principal, &t).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::UsersManage));
    let people = if can {
        service::users::list(&state.ctx, &cu.principal, &t)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let content = html! {
        main {
            h1 { "Endpoint users of " (t.name) }
            p.muted { "Local accounts that asked for administrator rights or a program, by workstation. Link one to the person it belongs to: nobody approves their own requests." }
            div.table-wrap tabindex="0" { table #endpoint-users {
                thead { tr { th { "Account" } th { "Workstation" } th { "Linked to" } th { "First request" } } }
                tbody {
                    @if eus.is_empty() { tr { td colspan="4" { span.muted { "No endpoint user has asked yet." } } } }
                    @for e in &eus { tr {
                        td { code { (e.account) } }
                        td { a href=(format!("/t/{}/devices/{}", t.slug, e.device_id)) { (e.hostname) } }
                        td {
                            @if can {
                                @let url = format!("/t/{}/endpoint-users/{}/link", t.slug, e.id);
                                form.inline method="post" action=(url) hx-post=(url) {
                                    (ui::csrf_input(&cu.csrf))
                                    select name="user_id" aria-label="Linked user" {
                                        option value="" { "not linked" }
                                        @for (u, _) in &people {
                                            option value=(u.id) selected[e.user_id.as_deref() == Some(u.id.to_string().as_str())] { (u.email) }
                                        }
                                    }
                                    button.secondary type="submit" { "Save" }
                                }
                            } @else {
                                (e.user_email.clone().unwrap_or_else(|| "not linked".into()))
                            }
                        }
                        td { (super::fmt::when(e.created_at, state.ctx.clock.now(), &cu.zone(Some(&t)))) }
                    } }
                }
            } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/endpoint-users",
        "Endpoint users",
        content,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkForm {
    #[serde(default)]
    user_id: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn link(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<LinkForm>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let r = service::requests::link_endpoint_user(
        &state.ctx,
        &cu.principal,
        &t,
        &id,
        form.user_id.as_deref(),
        &cu.origin,
    )
    .await;
    r?;
    if super::headers::is_htmx() {
        let page = page(state, cu, web::Path::from(slug)).await?;
        let notice = if form.user_id.as_deref().is_some_and(|u| !u.is_empty()) {
            "Endpoint user linked."
        } else {
            "Endpoint user unlinked."
        };
        return Ok(super::home::section(
            page,
            "endpoint-users",
            "hg-endpoint-users-changed",
            notice,
        ));
    }
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/endpoint-users", t.slug),
        None,
    ))
}
