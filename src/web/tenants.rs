//! Customer tenants (MSP admins) and each tenant's settings.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::error::Error;
use crate::http::AppState;
use crate::model::tenants::{LoginMode, Settings};
use crate::service::{
    self,
    tenants::{NewTenant, TenantUpdate},
};

pub async fn tenants_page(cu: CurrentUser) -> Result<HttpResponse, WebError> {
    cu.acting.appliance_level();
    if cu.principal.msp_scope().is_err() {
        return Err(WebError(Error::NotFound));
    }
    let content = html! {
        main {
            h1 { "Tenants" }
            div.table-wrap tabindex="0" { table {
                thead { tr { th { "Name" } th { "Slug" } th { "Kind" } th { "Status" } th { "Co-management" } th { "Seats" } } }
                tbody hx-disable {
                    @if !cu.tenants.iter().any(|t| t.kind == crate::model::tenants::TenantKind::Customer) {
                        tr { td.empty colspan="6" { "No customers yet — create one with the form below." } }
                    }
                    @for t in &cu.tenants {
                        tr {
                            td { a href=(format!("/t/{}/settings", t.slug)) { (t.name) } }
                            td { code { (t.slug) } }
                            td { (if t.kind == crate::model::tenants::TenantKind::Msp { "your MSP" } else { "customer" }) }
                            td { (if t.active { "active" } else { "disabled" }) }
                            td { (if t.settings.co_management { "on" } else { "off" }) }
                            td { (t.settings.seats) }
                        }
                    }
                }
            } }
            form.stack.card #new-tenant method="post" action="/tenants" hx-post="/tenants" hx-target="#new-tenant-result" {
                h2 { "New customer tenant" }
                div #new-tenant-error {}
                (ui::csrf_input(&cu.csrf))
                (ui::field("Name", "name", "text", "", None))
                (ui::field("Slug (used in URLs; empty = from the name)", "slug", "text", "", None))
                button type="submit" { "Create tenant" }
                div #new-tenant-result {}
            }
        }
    };
    Ok(html_response(nav::page(
        &cu, None, "tenants", "Tenants", content,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantForm {
    name: String,
    #[serde(default)]
    slug: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn create(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    form: web::Form<NewTenantForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    cu.acting.appliance_level();
    match service::tenants::create(
        &state.ctx,
        &cu.principal,
        NewTenant {
            name: f.name,
            slug: f.slug,
        },
        &cu.origin,
    )
    .await
    {
        Ok(t) => Ok(super::auth::redirect(
            &req,
            &format!("/t/{}/settings", t.slug),
            None,
        )),
        Err(Error::Validation { field, msg }) => Ok(HttpResponse::UnprocessableEntity()
            .content_type("text/html; charset=utf-8")
            .body(
                ui::form_error(Some(&super::fmt::validation_message(&field, &msg))).into_string(),
            )),
        Err(e) => Err(e.into()),
    }
}

// Long on purpose: one form, field after field; splitting it would scatter the form's markup.
pub async fn settings_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    cu.principal
        .scope(&t, Permission::SettingsView)
        .map(|_| ())?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::SettingsManage));
    let s = &t.settings;
    let action = format!("/t/{}/settings", t.slug);
    // Appliance-wide: shown to MSP admins on the MSP tenant's page.
    let backups = if t.kind == crate::model::tenants::TenantKind::Msp && cu.principal.is_msp_admin()
    {
        Some(service::backup::status(&state.ctx, &cu.principal).await?)
    } else {
        None
    };
    let content = html! {
        main {
            h1 { "Settings of " (t.name) }
            p.muted { a href=(format!("/t/{}/webhooks", t.slug)) { "Notifications and webhooks" } " · " a href=(format!("/t/{}/auto-approval", t.slug)) { "Auto-approval rules" } }
            div #settings-result {}
            form.stack.card method="post" action=(action) hx-post=(action) hx-target="#settings-result" {
                (ui::csrf_input(&cu.csrf))
                fieldset disabled[!can] {
                    @if cu.principal.is_msp_admin() {
                        (ui::field("Name", "name", "text", &t.name, None))
                        (ui::field("Slug", "slug", "text", t.slug.as_str(), None))
                        @if t.kind == crate::model::tenants::TenantKind::Customer {
                            label { input type="checkbox" name="active" value="true" checked[t.active]; " Tenant active (disabled tenants cannot sign in)" }
                        }
                    }
                    @if cu.principal.is_msp_staff() {
                        label { input type="checkbox" name="co_management" value="true" checked[s.co_management]; " Co-management (customer admins may be added)" }
                        (ui::field("Co-managed seats", "seats", "number", &s.seats.to_string(), None))
                    } @else {
                        p.muted.msp-owned { "Co-management is " (if s.co_management { "on" } else { "off" }) ", with " (s.seats) " co-managed seats. Your MSP sets these." }
                    }
                    label { "Technician login mode" select name="login_mode" {
                        option value="named" selected[s.login_mode == LoginMode::Named] { "Named accounts (msp-<username>)" }
                        option value="shared" selected[s.login_mode == LoginMode::Shared] { "One shared account per tenant" }
                    } }
                    label { input type="checkbox" name="acknowledge_shared" value="true"; " I understand shared mode clones one secret onto every workstation" }
                    label { input type="checkbox" name="jit_enabled" value="true" checked[s.jit_enabled]; " Just-in-time admin requests enabled" }
                    label { input type="checkbox" name="jit_justification_required" value="true" checked[s.jit_justification_required]; " Justification required" }
                    (ui::field("Maximum session (minutes, ≤ 1440)", "jit_max_minutes", "number", &s.jit_max_minutes.to_string(), None))
                    (ui::field("Pending requests time out after (minutes)", "jit_pending_timeout_minutes", "number", &s.jit_pending_timeout_minutes.to_string(), None))
                    (ui::field("Offline login lasts (minutes, ≤ 1440)", "offline_login_minutes", "number", &s.offline_login_minutes.to_string(), None))
                    (ui::field("Alert when a workstation with open admin rights or a technician login stops checking in for (minutes)", "silence_alert_minutes", "number", &s.silence_alert_minutes.to_string(), None))
                    label { input type="checkbox" name="remove_standing_admins" value="true" checked[s.remove_standing_admins]
                        data-confirm-check="Every workstation of this tenant will take the administrators it found at enrollment out of the administrators group, except the accounts listed below. Continue?"; " Remove standing administrators (found at enrollment) from every workstation" }
                    (ui::field("…except these accounts (comma-separated, e.g. a break-glass account)", "standing_admin_exceptions", "text", &s.standing_admin_exceptions.join(", "), None))
                    label { "Time zone (policy windows, auto-approval hours) "
                        input type="text" name="time_zone" value=(s.time_zone) list="time-zones" required;
                        datalist #time-zones { @for z in crate::model::zones::names() { option value=(z) {} } }
                    }
                    button type="submit" { "Save settings" }
                }
            }
            @if let Some(b) = &backups {
                section.card #backups {
                    h2 { "Backups" }
                    @if b.keep == 0 {
                        p { "Scheduled backups are off (" code { "backup.keep = 0" } "). Backups made here go to " code { (b.dir.display()) } "." }
                    } @else {
                        p {
                            "Every " (b.every_hours) " hours into " code { (b.dir.display()) } ", the newest " (b.keep) " kept"
                            @if let Some(n) = b.next_at { "; the next one is due " (super::fmt::when(n, state.ctx.clock.now(), &cu.zone(Some(&t)))) }
                            ". " code { "master.key" } " is never in them: keep a copy of it elsewhere."
                        }
                    }
                    form.inline method="post" action="/appliance/backup" hx-post="/appliance/backup" hx-target="#backup-result" hx-indicator="#backup-busy" {
                        (ui::csrf_input(&cu.csrf))
                        button type="submit" { "Back up now" }
                        span #backup-busy.htmx-indicator { " Backing up…" }
                    }
                    div #backup-result {}
                    @if !b.recent.is_empty() {
                        div.table-wrap tabindex="0" { table {
                            thead { tr { th { "File" } th { "Size" } th { "Audit entries" } } }
                            tbody {
                                @for (name, size, entries) in &b.recent {
                                    tr { td { code { (name) } } td { (size / 1024) " KiB" } td { (entries.map(|e| e.to_string()).unwrap_or_else(|| "no manifest".into())) } }
                                }
                            }
                        } }
                    }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/settings",
        "Settings",
        content,
    )))
}

pub async fn update(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    // Unticked checkboxes are not sent: absent means off. Co-management is the MSP's to set;
    // a form without it (a customer's) keeps the tenant's value, and one that tries to change
    // it is refused by the service.
    let msp = cu.principal.is_msp_staff();
    let mut s = Settings {
        co_management: if msp { false } else { t.settings.co_management },
        jit_enabled: false,
        jit_justification_required: false,
        remove_standing_admins: false,
        ..t.settings.clone()
    };
    let (mut name, mut new_slug, mut active, mut ack) = (None, None, None, false);
    if cu.principal.is_msp_admin() && t.kind == crate::model::tenants::TenantKind::Customer {
        active = Some(false);
    }
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "name" => name = Some(v),
            "slug" => new_slug = Some(v),
            "active" => active = Some(v == "true"),
            "acknowledge_shared" => ack = v == "true",
            "csrf_token" => {}
            other => setting(&mut s, other, &v)?,
        }
    }
    let u = TenantUpdate {
        name,
        slug: new_slug,
        active,
        settings: s,
        acknowledge_shared: ack,
    };
    match service::tenants::update(&state.ctx, &cu.principal, &t, u, &cu.origin).await {
        Ok(t2) if t2.slug != t.slug => Ok(super::auth::redirect(
            &req,
            &format!("/t/{}/settings", t2.slug),
            None,
        )),
        Ok(_) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html! { div.flash.info { "Settings saved." } }.into_string())),
        Err(Error::Validation { field, msg }) => Ok(HttpResponse::UnprocessableEntity()
            .content_type("text/html; charset=utf-8")
            .body(
                ui::form_error(Some(&super::fmt::validation_message(&field, &msg))).into_string(),
            )),
        Err(e) => Err(WebError::from(e)),
    }
}

/// "Back up now" (MSP admins only; anyone else gets the missing answer, audited).
pub async fn backup_now(
    state: web::Data<AppState>,
    cu: CurrentUser,
) -> Result<HttpResponse, WebError> {
    cu.acting.appliance_level();
    match service::backup::run_now(&state.ctx, &cu.principal, &cu.origin).await {
        Ok(name) => Ok(super::home::fragment(
            html! { p.ok { "Backup written: " code { (name) } " (with its manifest). Keep a copy of master.key elsewhere." } },
            true,
        )),
        Err(e) => Err(e.into()),
    }
}

/// One settings field of the form into `s`; an unknown field is refused.
fn setting(s: &mut Settings, k: &str, v: &str) -> Result<(), WebError> {
    let num = |f: &str, v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| WebError(Error::validation(f, "must be a whole number")))
    };
    match k {
        "co_management" => s.co_management = v == "true",
        "jit_enabled" => s.jit_enabled = v == "true",
        "jit_justification_required" => s.jit_justification_required = v == "true",
        "seats" => s.seats = num("seats", v)?,
        "time_zone" => s.time_zone = v.trim().to_string(),
        "offline_login_minutes" => s.offline_login_minutes = num(k, v)?,
        "silence_alert_minutes" => s.silence_alert_minutes = num(k, v)?,
        "remove_standing_admins" => s.remove_standing_admins = v == "true",
        "standing_admin_exceptions" => {
            s.standing_admin_exceptions = crate::model::tenants::account_list(v)
        }
        "jit_max_minutes" => s.jit_max_minutes = num(k, v)?,
        "jit_pending_timeout_minutes" => s.jit_pending_timeout_minutes = num(k, v)?,
        "login_mode" => {
            s.login_mode = LoginMode::parse(v).ok_or_else(|| {
                WebError(Error::validation("login_mode", "must be named or shared"))
            })?
        }
        other => return Err(WebError(Error::validation(other, "unknown field"))),
    }
    Ok(())
}
