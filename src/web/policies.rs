//! Application elevation policies in the portal: the list, an editor with a rule builder,
//! each policy's audit tab, and "test a decision".

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::error::WebError;
use super::home::{fragment, html_response};
use super::nav;
use super::session::CurrentUser;
use super::ui;
use crate::authz::Permission;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::http::AppState;
use crate::model::devices::Device;
use crate::model::policies::{Access, App, Decision, Policy, RuleKind, Span};
use crate::model::tenants::Tenant;
use crate::model::zones;
use crate::service;
use crate::service::policies::{PolicyInput, RuleInput};

/// A span in the tenant's time zone.
fn span_text(s: &Span, zone: &str) -> String {
    match s {
        Span::Fixed { hours, from } => {
            format!("{hours} h from {}", zones::rfc3339(*from, zone))
        }
        Span::Window { from, to } => format!(
            "{} – {}",
            zones::rfc3339(*from, zone),
            zones::rfc3339(*to, zone)
        ),
    }
}

/// The rules as the editor's text: one per line, `[deny] kind value`.
fn rules_text(p: &Policy) -> String {
    p.rules
        .iter()
        .map(|r| {
            format!(
                "{}{} {}",
                if r.deny { "deny " } else { "" },
                r.kind.as_str(),
                r.value
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn editor(cu: &CurrentUser, t: &Tenant, p: Option<&Policy>, devices: &[Device]) -> Markup {
    let action = match p {
        Some(p) => format!("/t/{}/policies/{}", t.slug, p.id),
        None => format!("/t/{}/policies", t.slug),
    };
    // A new policy has no duration until the admin picks one: nothing expires by surprise.
    let (fixed_hours, fixed, window) = match p.map(|p| &p.span) {
        Some(Span::Fixed { hours, .. }) => (hours.to_string(), true, None),
        Some(Span::Window { from, to }) => (String::new(), false, Some((*from, *to))),
        None => (String::new(), false, None),
    };
    let rfc = |ms: i64| zones::local(ms, &t.settings.time_zone);
    html! {
        form.stack.card.policy-editor method="post" action=(action) hx-post=(action) hx-target="#policy-result" {
            h2 { @if p.is_some() { "Edit policy" } @else { "New policy" } }
            (ui::csrf_input(&cu.csrf))
            (ui::field("Name", "name", "text", p.map(|p| p.name.as_str()).unwrap_or(""), None))
            (ui::field("Description", "description", "text", p.map(|p| p.description.as_str()).unwrap_or(""), None))
            label { input type="checkbox" name="enabled" value="true" checked[p.is_none_or(|p| p.enabled)]; " Deployed (enabled)" }
            fieldset {
                legend { "How long it applies (choose one)" }
                label { input type="radio" name="duration" value="fixed" checked[fixed] required; " Fixed: " input type="number" name="hours" min="1" max="8760" value=(fixed_hours) placeholder="hours" aria-label="Hours"; " hours from deployment (at most 8760, a year)" }
                label { input type="radio" name="duration" value="window" checked[window.is_some()]; " Window (" (t.settings.time_zone) "), from " input type="text" name="from" placeholder="2026-11-23T08:00" aria-label="From" value=(window.map(|w| rfc(w.0)).unwrap_or_default()); " to " input type="text" name="to" placeholder="2026-11-23T18:00" aria-label="To" value=(window.map(|w| rfc(w.1)).unwrap_or_default()); }
            }
            label { "Applications " select name="access" {
                option value="specific" selected[p.is_none_or(|p| p.access == Access::Specific)] { "Specific applications (the allow rules below)" }
                option value="all" selected[p.is_some_and(|p| p.access == Access::All)] { "All applications (deny rules still apply)" }
            } }
            label { "Workstations (none selected: all) " select name="devices" multiple {
                @for d in devices { option value=(d.id) selected[p.is_some_and(|p| p.devices.contains(&d.id.to_string()))] { (d.hostname) } }
            } }
            (ui::field("Endpoint users (local account names, comma-separated; empty: all)", "users", "text", &p.map(|p| p.users.join(", ")).unwrap_or_default(), None))
            label {
                "Rules, one per line: " code { "[deny] kind value" } " with kind "
                @for k in RuleKind::ALL { code { (k.as_str()) } " " }
                textarea name="rules" rows="6" placeholder="path /usr/bin/wireshark\nhash 3f5c…(64 hex)\nvendor Debian\ndeny path /usr/bin/bash" { (p.map(rules_text).unwrap_or_default()) }
            }
            button type="submit" { @if p.is_some() { "Save policy" } @else { "Create policy" } }
        }
    }
}

fn test_form(cu: &CurrentUser, t: &Tenant, devices: &[Device]) -> Markup {
    let action = format!("/t/{}/policies/test", t.slug);
    html! {
        form.stack.card.policy-test method="post" action=(action) hx-post=(action) hx-target="#test-result" {
            h2 { "Test a decision" }
            (ui::csrf_input(&cu.csrf))
            label { "Workstation " select name="device_id" { option value="" { "any" } @for d in devices { option value=(d.id) { (d.hostname) } } } }
            (ui::field("Endpoint user", "user", "text", "", None))
            (ui::field("Path", "path", "text", "", None))
            (ui::field("SHA-256", "sha256", "text", "", None))
            (ui::field("Vendor", "vendor", "text", "", None))
            (ui::field("Product", "product", "text", "", None))
            (ui::field("Publisher (signer)", "signer", "text", "", None))
            label { input type="checkbox" name="verified" value="true"; " Signature verified" }
            (ui::field("CLSID", "clsid", "text", "", None))
            button type="submit" { "Test" }
            div #test-result {}
        }
    }
}

async fn devices_of(state: &AppState, cu: &CurrentUser, t: &Tenant) -> Vec<Device> {
    service::devices::list(&state.ctx, &cu.principal, t)
        .await
        .unwrap_or_default()
}

pub async fn policies_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let ps = service::policies::list(&state.ctx, &cu.principal, &t).await?;
    let can = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::PoliciesManage));
    let devices = devices_of(&state, &cu, &t).await;
    let content = html! {
        main {
            h1 { "Application policies" }
            p.muted { "Let people run the programs they need with administrator rights, without making them administrators. Deny rules win over allows; a program no policy allows is refused with advice. Workstations get every change at once and decide from their copy when the appliance is out of reach." }
            div.table-wrap tabindex="0" { table #policies-table {
                thead { tr { th { "Name" } th { "State" } th { "Duration" } th { "Applications" } th { "Rules" } th { "Targets" } } }
                tbody {
                    @if ps.is_empty() { tr { td colspan="6" { span.muted { "No policies yet." } } } }
                    @for p in &ps { tr {
                        td { a href=(format!("/t/{}/policies/{}", t.slug, p.id)) { (p.name) } }
                        td { (if p.enabled { "deployed" } else { "disabled" }) }
                        td { (span_text(&p.span, &t.settings.time_zone)) }
                        td { (match p.access { Access::All => "all", Access::Specific => "specific" }) }
                        td { (p.rules.len()) }
                        td { (if p.devices.is_empty() { "all workstations".to_string() } else { format!("{} workstation(s)", p.devices.len()) }) ", "
                             (if p.users.is_empty() { "all users".to_string() } else { p.users.join(", ") }) }
                    } }
                }
            } }
            div #policy-result {}
            p { a.button.secondary href=(format!("/t/{}/policies/export", t.slug)) download { "Export policies (JSON)" } }
            @if can { (editor(&cu, &t, None, &devices)) (super::policy_files::import_form(&cu, &t)) }
            (test_form(&cu, &t, &devices))
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/policies",
        "Application policies",
        content,
    )))
}

pub async fn policy_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    let p = service::policies::get(&state.ctx, &cu.principal, &t, &id).await?;
    let perms = cu.principal.permissions_in(&t).unwrap_or_default();
    let trail = if perms.contains(Permission::AuditView) {
        service::policies::audit(&state.ctx, &cu.principal, &t, &id).await?
    } else {
        Vec::new()
    };
    let devices = devices_of(&state, &cu, &t).await;
    let delete = format!("/t/{}/policies/{}/delete", t.slug, p.id);
    let content = html! {
        main {
            h1 { (p.name) }
            p.muted { (p.description) }
            dl.kv {
                dt { "State" } dd { (if p.enabled { "deployed" } else { "disabled" }) }
                dt { "Duration" } dd { (span_text(&p.span, &t.settings.time_zone)) }
                dt { "Applications" } dd { (match p.access { Access::All => "all", Access::Specific => "specific" }) }
            }
            div.table-wrap tabindex="0" { table.rules { thead { tr { th { "Rule" } th { "Type" } th { "Value" } th { "Effect" } } }
                tbody { @for r in &p.rules { tr { td { code { (r.id) } } td { (r.kind.label()) } td { code { (r.value) } } td { (if r.deny { "deny" } else { "allow" }) } } } } } }
            div #policy-result {}
            @if perms.contains(Permission::PoliciesManage) {
                (editor(&cu, &t, Some(&p), &devices))
                form.inline method="post" action=(delete) hx-post=(delete) hx-target="#policy-result" hx-confirm="Delete this policy? Workstations stop allowing its programs at once." {
                    (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes";
                    button.danger type="submit" { "Delete policy" }
                }
            }
            h2 { "Audit" }
            @if !perms.contains(Permission::AuditView) { p.muted { "Needs audit.view." } }
            div.table-wrap tabindex="0" { table.policy-audit { thead { tr { th { "When" } th { "Event" } th { "Outcome" } th { "Details" } } }
                tbody { @for e in &trail { tr { td { (super::fmt::when(e.at, state.ctx.clock.now(), &cu.zone(Some(&t)))) } td { code { (e.event) } } td { (e.outcome.as_str()) } td { code { (e.details) } } } } } } }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/policies",
        &p.name,
        content,
    )))
}

/// The editor's fields, in the order a browser sends them (`devices` repeats).
fn input_from(form: Vec<(String, String)>) -> Result<PolicyInput, Error> {
    let mut i = PolicyInput {
        name: String::new(),
        description: String::new(),
        enabled: false,
        devices: Vec::new(),
        users: Vec::new(),
        duration: String::new(),
        hours: None,
        from: None,
        to: None,
        access: "specific".into(),
        rules: Vec::new(),
    };
    for (k, v) in form {
        match k.as_str() {
            "name" => i.name = v,
            "description" => i.description = v,
            "enabled" => i.enabled = v == "true",
            "duration" => i.duration = v,
            "hours" if v.trim().is_empty() => {}
            "hours" => {
                i.hours = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| Error::validation("hours", "must be a number of hours"))?,
                )
            }
            "from" => i.from = Some(v).filter(|v| !v.trim().is_empty()),
            "to" => i.to = Some(v).filter(|v| !v.trim().is_empty()),
            "access" => i.access = v,
            "devices" => i.devices.push(v),
            "users" => {
                i.users = v
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "rules" => {
                for (n, line) in v
                    .lines()
                    .map(str::trim)
                    .enumerate()
                    .filter(|(_, l)| !l.is_empty())
                {
                    let (deny, rest) = match line.strip_prefix("deny ") {
                        Some(r) => (true, r.trim_start()),
                        None => (
                            false,
                            line.strip_prefix("allow ").unwrap_or(line).trim_start(),
                        ),
                    };
                    let (kind, value) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                        Error::validation(
                            "rules",
                            format!("line {}: write it as [deny] kind value", n + 1),
                        )
                    })?;
                    i.rules.push(RuleInput {
                        kind: kind.to_string(),
                        value: value.trim().to_string(),
                        deny,
                    });
                }
            }
            "csrf_token" => {}
            other => return Err(Error::validation(other, "unknown field")),
        }
    }
    if i.duration == "window" {
        i.hours = None;
    }
    Ok(i)
}

async fn save(
    state: &AppState,
    req: &actix_web::HttpRequest,
    cu: &CurrentUser,
    t: &Tenant,
    id: Option<String>,
    form: Vec<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let input = match input_from(form) {
        Ok(i) => i,
        Err(Error::Validation { field, msg }) => {
            return Ok(fragment(
                ui::form_error(Some(&super::fmt::validation_message(&field, &msg))),
                false,
            ));
        }
        Err(e) => return Err(WebError(e)),
    };
    let new = id.is_none();
    match service::policies::save(&state.ctx, &cu.principal, t, id, input, &cu.origin).await {
        // A new policy opens on its own page, which lists it with the others.
        Ok(p) if new => Ok(super::auth::redirect(
            req,
            &format!("/t/{}/policies/{}", t.slug, p.id),
            None,
        )),
        Ok(p) => Ok(fragment(
            html! { div.flash.info { "Policy " a href=(format!("/t/{}/policies/{}", t.slug, p.id)) { (p.name) } " saved and sent to the workstations." } },
            true,
        )),
        Err(Error::Validation { field, msg }) => Ok(fragment(
            ui::form_error(Some(&super::fmt::validation_message(&field, &msg))),
            false,
        )),
        Err(e) => Err(WebError::from(e)),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    save(&state, &req, &cu, &t, None, form.into_inner()).await
}

pub async fn update(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    let t = cu.tenant(&state, &slug).await?;
    save(&state, &req, &cu, &t, Some(id), form.into_inner()).await
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
    service::policies::delete(&state.ctx, &cu.principal, &t, &id, &cu.origin).await?;
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/policies", t.slug),
        None,
    ))
}

pub async fn test(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let (mut app, mut device, mut user) = (App::default(), String::new(), String::new());
    for (k, v) in form.into_inner() {
        match k.as_str() {
            "device_id" => device = v,
            "user" => user = v.trim().to_string(),
            "path" => app.path = v.trim().to_string(),
            "sha256" => app.sha256 = v.trim().to_string(),
            "vendor" => app.vendor = v.trim().to_string(),
            "product" => app.product = v.trim().to_string(),
            "signer" => app.signer = v.trim().to_string(),
            "verified" => app.verified = v == "true",
            "clsid" => app.clsid = v.trim().to_string(),
            "csrf_token" => {}
            other => return Err(WebError(Error::validation(other, "unknown field"))),
        }
    }
    let decided = service::policies::test(&state.ctx, &cu.principal, &t, &device, &user, app).await;
    let policies = service::policies::list(&state.ctx, &cu.principal, &t)
        .await
        .unwrap_or_default();
    let name = |id: &str| {
        policies
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let (now, zone) = (state.ctx.clock.now(), cu.zone(Some(&t)));
    match decided {
        Ok(d) => Ok(fragment(
            html! { div.flash.info.decision { @match d {
                Decision::Allow { policy, rule, until } => {
                    "Allowed by policy " strong { (name(&policy)) } @if let Some(r) = rule { ", rule " code { (r) } } " until " (super::fmt::when(Timestamp::from_millis(until), now, &zone)) "."
                }
                Decision::Deny { policy, rule } => { "Denied by policy " strong { (name(&policy)) } ", rule " code { (rule) } "." }
                Decision::Ask => { "No policy allows it: the user would be told to ask." }
            } } },
            true,
        )),
        Err(Error::Validation { field, msg }) => Ok(fragment(
            ui::form_error(Some(&super::fmt::validation_message(&field, &msg))),
            false,
        )),
        Err(e) => Err(WebError::from(e)),
    }
}
