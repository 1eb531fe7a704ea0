//! Auto-approval rules of a tenant in the portal (ManageEngine's autonomous approval).

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
use crate::model::requests::AutoRule;
use crate::service;

fn hhmm(m: Option<u32>) -> String {
    m.map(|m| format!("{:02}:{:02}", m / 60, m % 60))
        .unwrap_or_default()
}

pub async fn rules_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let ctx = &state.ctx;
    let t = cu.tenant(&state, &slug).await?;
    let rules: Vec<AutoRule> = service::requests::rules_of(ctx, &cu.principal, &t).await?;
    let perms = cu.principal.permissions_in(&t).unwrap_or_default();
    let can = perms.contains(Permission::PoliciesManage);
    let devices = if perms.contains(Permission::DevicesView) {
        service::devices::list(ctx, &cu.principal, &t).await?
    } else {
        Vec::new()
    };
    let host_of = |id: &str| {
        devices
            .iter()
            .find(|d| d.id.to_string() == id)
            .map(|d| d.hostname.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let action = format!("/t/{}/auto-approval", t.slug);
    let content = html! {
        main {
            h1 { "Auto-approval rules" }
            p.muted { "A request that every condition of a rule matches is approved at once and recorded as approved by that rule. Requests that break the tenant's rules (duration, justification, one open request) are never auto-approved. Times of day are in the tenant's time zone (" (t.settings.time_zone) ", set in Settings)." }
            div.table-wrap tabindex="0" { table #rules-table {
                thead { tr { th { "Name" } th { "Endpoint user" } th { "Workstation" } th { "Up to" } th { "Time of day" } th {} } }
                tbody {
                    @if rules.is_empty() { tr { td.empty colspan="6" { "No rules: every request waits for a person. Add one below to approve routine requests at once." } } }
                    @for r in &rules {
                        tr {
                            td { (r.name) }
                            td { @if let Some(a) = &r.account { code { (a) } } @else { "any" } }
                            td { @if let Some(d) = &r.device_id { (host_of(d)) } @else { "any" } }
                            td { (r.max_minutes) " min" }
                            td { @if r.from_minute.is_some() { (hhmm(r.from_minute)) "–" (hhmm(r.to_minute)) } @else { "any time" } }
                            td { @if can {
                                @let url = format!("{action}/{}/delete", r.id);
                                form.inline method="post" action=(url) hx-post=(url) hx-confirm="Delete this rule? Matching requests will wait for a person again." {
                                    (ui::csrf_input(&cu.csrf)) input type="hidden" name="confirm" value="yes";
                                    button.secondary type="submit" { "Delete" }
                                }
                            } }
                        }
                    }
                }
            } }
            div #rules-result {}
            @if can {
                form.stack.card #new-rule method="post" action=(action) hx-post=(action) hx-target="#rules-result" data-reset-on-success {
                    h2 { "New rule" }
                    div #new-rule-error {}
                    (ui::csrf_input(&cu.csrf))
                    (ui::field("Name", "name", "text", "", None))
                    (ui::field("Endpoint user (local account; empty for any)", "account", "text", "", None))
                    label { "Workstation" select name="device_id" {
                        option value="" { "any" }
                        @for d in &devices { option value=(d.id) { (d.hostname) } }
                    } }
                    label { "Longest duration approved (minutes)" input type="number" name="max_minutes" min="5" max=(t.settings.jit_max_minutes) value="60" required; }
                    label { "From (" (t.settings.time_zone) ", HH:MM; empty for any time)" input type="time" name="from"; }
                    label { "To (" (t.settings.time_zone) ")" input type="time" name="to"; }
                    button type="submit" { "Add rule" }
                }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/requests",
        "Auto-approval rules",
        content,
    )))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleForm {
    name: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    max_minutes: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn create(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<RuleForm>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let f = form.into_inner();
    let Ok(max_minutes) = f.max_minutes.trim().parse::<i64>() else {
        return Ok(super::home::invalid(
            "new-rule-error",
            &super::fmt::validation_message("max_minutes", "must be a number of minutes"),
        ));
    };
    let n = service::requests::NewRule {
        name: f.name,
        account: f.account,
        device_id: f.device_id,
        max_minutes,
        from: f.from,
        to: f.to,
    };
    let name = n.name.trim().to_string();
    match service::requests::create_rule(&state.ctx, &cu.principal, &t, n, &cu.origin).await {
        // The list, now with the new rule, and an empty form.
        Ok(_) if super::headers::is_htmx() => {
            let page = rules_page(state, cu, web::Path::from(slug.into_inner())).await?;
            let notice = format!("Rule \u{201c}{name}\u{201d} added.");
            Ok(super::home::section(
                page,
                "rules-table",
                "hg-rules-changed",
                &notice,
            ))
        }
        Ok(_) => Ok(super::auth::redirect(
            &req,
            &format!("/t/{}/auto-approval", t.slug),
            None,
        )),
        Err(Error::Validation { field, msg }) => Ok(super::home::invalid(
            "new-rule-error",
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
    service::requests::delete_rule(&state.ctx, &cu.principal, &t, &id, &cu.origin).await?;
    if super::headers::is_htmx() {
        let page = rules_page(state, cu, web::Path::from(slug)).await?;
        return Ok(super::home::section(
            page,
            "rules-table",
            "hg-rules-changed",
            "Rule deleted.",
        ));
    }
    Ok(super::auth::redirect(
        &req,
        &format!("/t/{}/auto-approval", t.slug),
        None,
    ))
}
