//! A tenant's policies as a file in the portal: download, and import with a preview of what
//! would change (dry run) before an explicit "apply".

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::fragment;
use super::session::CurrentUser;
use super::ui;
use crate::error::Error;
use crate::http::AppState;
use crate::model::tenants::Tenant;
use crate::service;
use crate::service::policy_files::{Plan, PolicyFile};

/// The import form on the policies page (for `policies.manage`).
pub fn import_form(cu: &CurrentUser, t: &Tenant) -> Markup {
    let action = format!("/t/{}/policies/import", t.slug);
    html! {
        form.stack.card.policy-import method="post" action=(action) hx-post=(action) hx-target="#import-result" {
            h2 { "Import policies" }
            p.muted { "Paste a file exported from this or another tenant. Policies are matched by name; you see what would change before anything is saved." }
            (ui::csrf_input(&cu.csrf))
            input type="hidden" name="dry_run" value="yes";
            textarea name="document" rows="6" required placeholder="{\"format\": \"hourglass-policies/1\", \"policies\": [...]}" aria-label="Policy file" {}
            label { input type="checkbox" name="mode" value="replace"; " Replace: also delete the policies the file does not name" }
            button type="submit" { "Preview import" }
        }
        // Outside the form: the preview carries its own "apply" form.
        div #import-result {}
    }
}

fn plan_view(cu: &CurrentUser, t: &Tenant, plan: &Plan, document: &str, mode: &str) -> Markup {
    let action = format!("/t/{}/policies/import", t.slug);
    html! {
        div.import-plan {
            @if plan.dry_run { h3 { "What the import would do" } } @else { div.flash.info { "Imported and sent to the workstations." } }
            ul {
                @for n in &plan.create { li.create { "Create " strong { (n) } } }
                @for (n, fields) in &plan.update { li.update { "Change " strong { (n) } ": " (fields.join(", ")) } }
                @for n in &plan.delete { li.delete.warn { "Delete " strong { (n) } } }
                @if !plan.unchanged.is_empty() { li.muted { (plan.unchanged.len()) " unchanged" } }
            }
            @if plan.dry_run && plan.is_empty() { p.muted { "Nothing to change." } }
            @if plan.dry_run && !plan.is_empty() {
                form.inline method="post" action=(action) hx-post=(action) hx-target="#import-result"
                    hx-confirm=(if plan.delete.is_empty() { "Apply this import?" } else { "Apply this import? Policies listed for deletion stop allowing their programs at once." }) {
                    (ui::csrf_input(&cu.csrf))
                    input type="hidden" name="document" value=(document);
                    input type="hidden" name="mode" value=(mode);
                    button type="submit" { "Apply import" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportForm {
    document: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    dry_run: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn import(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    form: web::Form<ImportForm>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let f = form.into_inner();
    let mode = f.mode.unwrap_or_else(|| "merge".into());
    let bad = |m: String| Ok(fragment(ui::form_error(Some(&m)), false));
    let file: PolicyFile = match serde_json::from_str(&f.document) {
        Ok(file) => file,
        Err(e) => return bad(format!("not a policy file: {e}")),
    };
    let dry_run = f.dry_run.as_deref() == Some("yes");
    let replace = mode == "replace";
    let r = service::policy_files::import(
        &state.ctx,
        &cu.principal,
        &t,
        file,
        replace,
        dry_run,
        &cu.origin,
    )
    .await;
    match r {
        Ok(plan) => Ok(fragment(
            plan_view(&cu, &t, &plan, &f.document, &mode),
            true,
        )),
        Err(Error::Validation { field, msg }) => bad(super::fmt::validation_message(&field, &msg)),
        Err(e) => Err(WebError::from(e)),
    }
}

/// Downloads the tenant's policies as `policies-<slug>.json`.
pub async fn export(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let file = service::policy_files::export(&state.ctx, &cu.principal, &t).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"policies-{}.json\"", t.slug),
        ))
        .json(file))
}
