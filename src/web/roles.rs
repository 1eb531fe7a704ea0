//! Roles of a tenant: the built-in ones (fixed) and custom ones built from permissions.

use actix_web::{HttpResponse, web};
use maud::html;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::error::Error;
use crate::http::AppState;
use crate::model::roles::BuiltinRole;
use crate::model::tenants::TenantKind;
use crate::service;

pub async fn roles_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let customs = service::roles::list(&state.ctx, &cu.principal, &t).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::UsersManage));
    let action = format!("/t/{}/roles", t.slug);
    let content = html! {
        main {
            h1 { "Roles" }
            div.table-wrap tabindex="0" { table #roles-table {
                thead { tr { th { "Role" } th { "Kind" } th { "Permissions" } th {} } }
                tbody {
                    @for b in BuiltinRole::ALL.iter().filter(|b| b.for_msp() == (t.kind == TenantKind::Msp) || **b == BuiltinRole::MspAdmin && t.kind == TenantKind::Msp) {
                        tr { td { (b.label()) } td { "built-in" } td { @for p in b.permissions().iter() { code { (p.code()) } " " } } td {} }
                    }
                    @for c in &customs {
                        tr { td hx-disable { (c.name) } td { "custom" } td { @for p in c.permissions.iter() { code { (p.code()) } " " } }
                            td { @if can {
                                form.inline method="post" action=(format!("{action}/{}/delete", c.id)) hx-post=(format!("{action}/{}/delete", c.id)) hx-target="#roles-result" hx-confirm="Delete this role? People holding it lose its permissions." {
                                    (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes"; button.secondary type="submit" { "Delete" } }
                            } } }
                    }
                }
            } }
            div #roles-result {}
            @if can {
                form.stack.card #new-role method="post" action=(action) hx-post=(action) hx-target="#roles-result" data-reset-on-success {
                    h2 { "New custom role" }
                    div #new-role-error {}
                    (ui::csrf_input(&cu.csrf))
                    (ui::field("Name", "name", "text", "", None))
                    @for p in Permission::ALL { label { input type="checkbox" name="permission" value=(p.code()); " " code { (p.code()) } } }
                    button type="submit" { "Create role" }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/roles",
        "Roles",
        content,
    )))
}

pub async fn create(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let (mut name, mut perms) = (String::new(), Vec::new());
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "name" => name = v,
            "permission" => perms.push(v),
            "csrf_token" => {}
            other => return Err(WebError(Error::validation(other, "unknown field"))),
        }
    }
    match service::roles::create(&state.ctx, &cu.principal, &t, &name, &perms, &cu.origin).await {
        // The list, now with the new role, and an empty form.
        Ok(_) if super::headers::is_htmx() => {
            let page = roles_page(state, cu, web::Path::from(t.slug.to_string())).await?;
            let notice = format!("Role \u{201c}{}\u{201d} created.", name.trim());
            Ok(super::home::section(
                page,
                "roles-table",
                "hg-roles-changed",
                &notice,
            ))
        }
        Ok(_) => Ok(super::auth::redirect(
            &req,
            &format!("/t/{}/roles", t.slug),
            None,
        )),
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "new-role-error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(WebError::from(e)),
    }
}

pub async fn delete(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<super::users::ActionFormPub>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    form.confirmed("the deletion")?;
    service::roles::delete(&state.ctx, &cu.principal, &t, &id, &cu.origin).await?;
    if super::headers::is_htmx() {
        let page = roles_page(state, cu, web::Path::from(slug)).await?;
        return Ok(super::home::section(
            page,
            "roles-table",
            "hg-roles-changed",
            "Role deleted.",
        ));
    }
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/roles", t.slug),
        None,
    ))
}
