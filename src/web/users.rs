//! Users of a tenant: list, add (enrollment link + QR), detail with actions.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::crypto::totp;
use crate::error::Error;
use crate::http::AppState;
use crate::ids::{TenantId, UserId};
use crate::model::roles::BuiltinRole;
use crate::model::tenants::{Tenant, TenantKind};
use crate::model::users::User;
use crate::service::{self, users::Action};

pub const USERS_TABLE_ID: &str = "users-table";

fn status_label(u: &User, roles: &[String]) -> String {
    let mut s = u.status.as_str().to_string();
    if roles.iter().any(|r| r == BuiltinRole::CoManaged.key()) {
        s = format!("{s} · co-managed");
    }
    if roles.iter().any(|r| r == BuiltinRole::MspAdmin.key()) {
        s = format!("{s} · MSP admin");
    }
    s
}

fn users_table(t: &Tenant, users: &[(User, Vec<String>)], oob: bool) -> Markup {
    html! {
        div.table-wrap #users-list tabindex="0" hx-swap-oob=[oob.then_some("true")] { table id=(USERS_TABLE_ID) {
            thead { tr { th { "Name" } th { "Email" } th { "Username" } th { "Status" } } }
            tbody hx-disable {
                @if users.is_empty() { tr { td.empty colspan="4" { "No users yet: add one below; they get a one-time link to set a password and an authenticator." } } }
                @for (u, roles) in users {
                    tr {
                        td { a href=(format!("/t/{}/users/{}", t.slug, u.id)) { (u.first_name) " " (u.last_name) } }
                        td { (u.email) }
                        td { code { (u.username) } }
                        td.status { (status_label(u, roles)) }
                    }
                }
            }
        } }
    }
}

fn add_form(t: &Tenant, csrf: &str) -> Markup {
    let action = format!("/t/{}/users", t.slug);
    html! {
        form.stack.card #add-user method="post" action=(action) hx-post=(action) hx-target="#add-user-result" hx-swap="afterbegin" data-reset-on-success {
            h2 { "Add a user" }
            div #add-user-error {}
            (ui::csrf_input(csrf))
            (ui::field("First name", "first_name", "text", "", None))
            (ui::field("Last name", "last_name", "text", "", None))
            (ui::field("Email", "email", "email", "", None))
            label { "Username (leave empty to generate " (if t.kind == TenantKind::Customer { "co-…" } else { "from the email" }) ")"
                input type="text" name="username" maxlength="20"; }
            button type="submit" { "Add user" }
            div #add-user-result {}
        }
    }
}

pub async fn users_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let users = service::users::list(&state.ctx, &cu.principal, &t).await?;
    let can_manage = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::UsersManage));
    let content = html! {
        main {
            h1 { "Users of " (t.name) }
            (users_table(&t, &users, false))
            @if can_manage { (add_form(&t, &cu.csrf)) }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/users",
        "Users",
        content,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    first_name: String,
    last_name: String,
    email: String,
    #[serde(default)]
    username: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

/// A link people follow: never built from the request's `Host` header.
pub fn link_url(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.ctx.links().portal)
}

fn link_card(url: &str, who: &str, mailed: bool) -> Result<Markup, WebError> {
    let qr = totp::qr_png_base64(url)?;
    Ok(html! {
        div.flash.info.enrollment-link {
            p { "Enrollment link for " strong { (who) } " (single use, valid 72 hours). Hand it over or let them scan the QR code:" }
            p { code.link { (url) } }
            img.qr src=(format!("data:image/png;base64,{qr}")) alt="Enrollment link QR code" width="180" height="180";
            @if mailed { p.muted { "It has also been mailed to them." } }
        }
    })
}

pub async fn create(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<AddUser>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let f = form.into_inner();
    let new = service::users::NewUser {
        first_name: f.first_name,
        last_name: f.last_name,
        email: f.email,
        username: f.username,
    };
    match service::users::create(&state.ctx, &cu.principal, &t, new, &cu.origin).await {
        Ok(c) => {
            let url = link_url(&state, &format!("/enroll/{}", c.enrollment_token));
            let mailed = service::users::mail_enrollment(&state.ctx, &c.user, &t, &url);
            let card = link_card(
                &url,
                &format!("{} ({})", c.user.email, c.user.username),
                mailed,
            )?;
            let users = service::users::list(&state.ctx, &cu.principal, &t).await?;
            Ok(HttpResponse::Ok()
                .insert_header(("HX-Trigger", "user-added"))
                .content_type("text/html; charset=utf-8")
                .body(html! { (card) (users_table(&t, &users, true)) }.into_string()))
        }
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "add-user-error",
            &super::fmt::validation_message(&field, &msg),
        )),
        Err(e) => Err(WebError::from(e)),
    }
}

// Long on purpose: the page's markup, section after section.
pub async fn detail_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = object_id(&id)?;
    let (u, roles, perms, assigned) =
        service::users::detail(&state.ctx, &cu.principal, &t, id).await?;
    let customs = service::roles::list(&state.ctx, &cu.principal, &t)
        .await
        .unwrap_or_default();
    let others = cu
        .tenants
        .iter()
        .filter(|x| x.kind == TenantKind::Customer)
        .cloned()
        .collect::<Vec<_>>();
    let can_manage = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::UsersManage));
    let base = format!("/t/{}/users/{}", t.slug, u.id);
    let content = html! {
        main {
            h1 { (u.first_name) " " (u.last_name) }
            dl.kv {
                dt { "Email" } dd { (u.email) }
                dt { "Username" } dd { code { (u.username) } }
                dt { "Status" } dd #user-status { (status_label(&u, &roles)) }
                dt { "Roles" } dd { @for r in &roles { code { (role_label(r, &customs)) } " " } }
                dt { "Effective permissions" } dd { @for p in perms.iter() { code { (p.code()) } " " } }
                @if u.login_locked || u.mfa_locked { dt { "Lock" } dd.bad { "locked after repeated failures" } }
                @if u.mfa_pause_next || u.mfa_pause_until.millis() > state.ctx.clock.now().millis() { dt { "MFA" } dd.warn { "paused" } }
            }
            @if can_manage {
                div #user-result {}
                div.card.actions {
                    h2 { "Actions" }
                    (action_button(&base, &cu.csrf, "make-admin", "Make admin", None))
                    (action_button(&base, &cu.csrf, "pause-mfa-next", "Pause MFA for the next login", None))
                    (action_button(&base, &cu.csrf, "pause-mfa-24h", "Pause MFA for 24 hours", None))
                    (action_button(&base, &cu.csrf, "unlock", "Unlock", None))
                    (action_button(&base, &cu.csrf, "end-sessions", "End all sessions", None))
                    (action_button(&base, &cu.csrf, "reset-enrollment", "Reset enrollment", Some("Their password and authenticator are removed and a new link is issued. Continue?")))
                    @if u.status == crate::model::users::UserStatus::Disabled {
                        (action_button(&base, &cu.csrf, "enable", "Enable", None))
                    } @else {
                        (action_button(&base, &cu.csrf, "disable", "Disable", Some("Disable this account and end its sessions?")))
                    }
                    (action_button(&base, &cu.csrf, "erase", "Erase personal data", Some("Replace this person's names and email with a pseudonym? This cannot be undone.")))
                }
                form.stack.card method="post" action=(format!("{base}/roles")) hx-post=(format!("{base}/roles")) hx-target="#user-result" {
                    h2 { "Roles" }
                    (ui::csrf_input(&cu.csrf))
                    label { "Role" select name="role" {
                        @for b in BuiltinRole::ALL.iter().filter(|b| b.for_msp() == (t.kind == TenantKind::Msp) && **b != BuiltinRole::CoManaged) {
                            option value=(b.key()) { (b.label()) }
                        }
                        @for c in &customs { option value=(c.id) { (c.name) } }
                    } }
                    div { button type="submit" name="op" value="add" { "Assign" } " " button.secondary type="submit" name="op" value="remove" { "Remove" } }
                }
                @if t.kind == TenantKind::Msp && roles.iter().any(|r| r == BuiltinRole::Technician.key()) {
                    form.stack.card method="post" action=(format!("{base}/tenants")) hx-post=(format!("{base}/tenants")) hx-target="#user-result" {
                        h2 { "Customer tenants this technician works in" }
                        (ui::csrf_input(&cu.csrf))
                        label { input type="checkbox" name="all" value="true" checked[u.all_tenants]; " All customer tenants" }
                        @for o in &others { label { input type="checkbox" name="tenant" value=(o.id) checked[assigned.contains(&o.id)]; " " (o.name) } }
                        button type="submit" { "Save assignments" }
                    }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/users",
        "User",
        content,
    )))
}

fn role_label(key: &str, customs: &[crate::model::roles::CustomRole]) -> String {
    BuiltinRole::parse(key)
        .map(|b| b.label().to_string())
        .or_else(|| customs.iter().find(|c| c.id == key).map(|c| c.name.clone()))
        .unwrap_or_else(|| key.to_string())
}

fn action_button(
    base: &str,
    csrf: &str,
    action: &str,
    label: &str,
    confirm: Option<&str>,
) -> Markup {
    let url = format!("{base}/{action}");
    html! {
        form.inline method="post" action=(url) hx-post=(url) hx-target="#user-result" hx-confirm=[confirm] {
            (ui::csrf_input(csrf))
            @if confirm.is_some() { input type="hidden" name="confirm" value="yes"; }
            button.secondary type="submit" { (label) }
        }
    }
}

/// Parses an id from the URL; a malformed one is simply not there (404, audited like any miss).
pub fn object_id(raw: &str) -> Result<UserId, WebError> {
    match UserId::parse(raw) {
        Some(id) => Ok(id),
        None => Err(WebError(Error::NotFound)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionForm {
    #[serde(default)]
    confirm: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn action(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, WebError> {
    let (slug, id, verb) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = object_id(&id)?;
    let action = match verb.as_str() {
        "make-admin" => Action::MakeAdmin,
        "pause-mfa-next" => Action::PauseMfa {
            next_login_only: true,
        },
        "pause-mfa-24h" => Action::PauseMfa {
            next_login_only: false,
        },
        "unlock" => Action::Unlock,
        "end-sessions" => Action::EndSessions,
        "reset-enrollment" => Action::ResetEnrollment,
        "disable" => Action::Disable,
        "enable" => Action::Enable,
        "erase" => Action::Erase,
        _ => return Err(WebError(Error::NotFound)),
    };
    let destructive = matches!(
        action,
        Action::ResetEnrollment | Action::Disable | Action::Erase
    );
    if destructive {
        confirmed(&form.confirm, "this action")?;
    }
    let acted =
        service::users::act_reporting(&state.ctx, &cu.principal, &t, id, action, &cu.origin)
            .await?;
    let body = match (acted.token, acted.ended) {
        (Some(tok), _) => link_card(
            &link_url(&state, &format!("/enroll/{tok}")),
            "this user",
            false,
        )?,
        // Offboarding says what it ended, so the admin knows the person is out everywhere.
        (None, Some(e)) => html! { div.flash.info.ended role="status" { "Done. " (e.sentence()) } },
        (None, None) => html! { div.flash.info { "Done." } },
    };
    Ok(HttpResponse::Ok()
        .insert_header(("HX-Trigger", "user-changed"))
        .content_type("text/html; charset=utf-8")
        .body(body.into_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleForm {
    role: String,
    op: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn roles(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = object_id(&id)?;
    let action = match form.op.as_str() {
        "add" => Action::AddRole(form.role.clone()),
        "remove" => Action::RemoveRole(form.role.clone()),
        _ => return Err(WebError(Error::validation("op", "must be add or remove"))),
    };
    service::users::act(&state.ctx, &cu.principal, &t, id, action, &cu.origin).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html! { div.flash.info { "Roles updated; reload to see them." } }.into_string()))
}

pub async fn tenants(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let id = object_id(&id)?;
    let mut all = false;
    let mut list = Vec::new();
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "all" => all = v == "true",
            "tenant" => list.push(
                TenantId::parse(&v)
                    .ok_or_else(|| WebError(Error::validation("tenant", "unknown tenant")))?,
            ),
            "csrf_token" => {}
            other => return Err(WebError(Error::validation(other, "unknown field"))),
        }
    }
    service::users::act(
        &state.ctx,
        &cu.principal,
        &t,
        id,
        Action::AssignTenants { all, tenants: list },
        &cu.origin,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html! { div.flash.info { "Assignments saved." } }.into_string()))
}

/// A confirmation-only form, shared by destructive actions elsewhere.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFormPub {
    #[serde(default)]
    pub confirm: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

impl ActionFormPub {
    pub fn confirmed(&self, what: &str) -> Result<(), WebError> {
        confirmed(&self.confirm, what)
    }
}

/// A destructive action goes ahead only when confirmed (`confirm=yes`); otherwise 422,
/// naming what was to be confirmed ("the deletion").
pub fn confirmed(confirm: &Option<String>, what: &str) -> Result<(), WebError> {
    match confirm.as_deref() {
        Some("yes") => Ok(()),
        _ => Err(WebError(Error::validation(
            "confirm",
            format!("confirm {what} (confirm=yes)"),
        ))),
    }
}
