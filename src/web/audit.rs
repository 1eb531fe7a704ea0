//! The audit page: a tenant's entries (all tenants for MSP admins), filtered and paged,
//! with the chain's verification status.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::WebError;
use super::home::html_response;
use super::nav;
use super::session::CurrentUser;
use crate::authz::Permission;
use crate::clock::Timestamp;
use crate::http::AppState;
use crate::model::audit::{Entry, VerifyReport};
use crate::model::audit_export::Format;
use crate::service;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    event: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    all: Option<String>,
    /// Export only: `csv` or `ndjson`.
    #[serde(default)]
    format: String,
}

pub async fn audit_page(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let scope = cu.principal.scope(&t, Permission::AuditView)?;
    let all_tenants = cu.principal.is_msp_admin() && q.all.as_deref() == Some("1");
    let filter = service::audit::ListFilter {
        event: Some(q.event.trim().to_string()).filter(|s| !s.is_empty()),
        actor: Some(q.actor.trim().to_string()).filter(|s| !s.is_empty()),
        before_seq: q.before,
        since: date(&q.from, "from")?,
        until: date(&q.to, "to")?.map(|t| t.plus_secs(86_400)),
        limit: 50,
    };
    let rows = service::audit::list(&state.ctx, &scope, all_tenants, filter).await?;
    let report = service::audit::verify(&state.ctx.db).await?;
    // The checkpoint covers every tenant's entries: MSP admins only.
    let checkpoint = if cu.principal.is_msp_admin() {
        service::checkpoints::latest(&state.ctx.db).await?
    } else {
        None
    };
    let can_export = cu
        .principal
        .permissions_in(&t)
        .is_some_and(|p| p.contains(Permission::AuditExport));
    let query = format!(
        "event={}&actor={}&from={}&to={}{}",
        enc(&q.event),
        enc(&q.actor),
        enc(&q.from),
        enc(&q.to),
        if all_tenants { "&all=1" } else { "" }
    );
    let next = rows.last().map(|(seq, _)| *seq);
    let names = service::audit::names(&state.ctx, &rows).await?;
    let summaries = service::audit::summaries(&state.ctx, &rows).await?;
    let (now, zone) = (state.ctx.clock.now(), cu.zone(Some(&t)));
    let name = |id: &Option<String>| id.as_ref().and_then(|i| names.get(i)).cloned();
    let base = format!("/t/{}/audit", t.slug);
    let content = html! {
        main {
            h1 { "Audit log" }
            (chain_status(&report, checkpoint.as_ref(), now, &zone))
            form.inline method="get" action=(base) {
                label { "Event" input name="event" value=(q.event); }
                label { "Actor id" input name="actor" value=(q.actor); }
                label { "From" input type="date" name="from" value=(q.from); }
                label { "To" input type="date" name="to" value=(q.to); }
                @if cu.principal.is_msp_admin() { label { input type="checkbox" name="all" value="1" checked[all_tenants]; " All tenants" } }
                button type="submit" { "Filter" }
            }
            @if can_export {
                p.actions {
                    "Export these entries (oldest first, up to " (service::audit::EXPORT_MAX) "): "
                    a href=(format!("{base}/export?format=csv&{query}")) download { "CSV" } " · "
                    a href=(format!("{base}/export?format=ndjson&{query}")) download { "NDJSON" }
                }
            }
            (entries_table(&rows, &name, &summaries, now, &zone))
            @if let Some(n) = next.filter(|_| rows.len() == 50) {
                p { a href=(format!("{base}?{query}&before={n}")) { "Older entries →" } }
            }
        }
    };
    Ok(html_response(nav::page(
        &cu,
        Some(&t),
        "/audit",
        "Audit",
        content,
    )))
}

/// Whether the hash chain holds, and the last signed checkpoint (MSP admins).
fn chain_status(
    report: &VerifyReport,
    checkpoint: Option<&(u64, Timestamp, String)>,
    now: Timestamp,
    zone: &str,
) -> Markup {
    html! {
    p #chain-status class=(if report.broken.is_none() { "ok" } else { "bad" }) {
        @match &report.broken {
            None => { "Hash chain verified: " (report.checked) " entries intact." }
            Some(b) => { "Hash chain BROKEN at entry " (b.seq) ": " (b.reason) }
        }
    }
    @if let Some((size, at, vkey)) = &checkpoint {
        p #checkpoint-status {
            "Last signed checkpoint: " (size) " entries, " (super::fmt::when(*at, now, zone)) ", in "
            code { (service::checkpoints::FILE) } " and the service log. Verifier key: " code { (vkey) }
        }
    }
    }
}

/// One row per entry, names joined in for the ids the entry holds.
fn entries_table(
    rows: &[(i64, Entry)],
    name: &dyn Fn(&Option<String>) -> Option<String>,
    summaries: &std::collections::HashMap<String, String>,
    now: Timestamp,
    zone: &str,
) -> Markup {
    html! {
    div.table-wrap tabindex="0" { table {
        thead { tr { th { "#" } th { "When" } th { "Event" } th { "Outcome" } th { "Who" } th { "What" } th { "Workstation" } th { "Details" } } }
        tbody hx-disable {
            @if rows.is_empty() { tr { td.empty colspan="8" { "No entries match these filters." } } }
            @for (seq, e) in rows {
                tr {
                    td { (seq) }
                    td { (super::fmt::when(e.at, now, zone)) }
                    td { span title=(e.event) { (event_label(&e.event)) } }
                    td { (e.outcome.as_str()) }
                    td title=(e.actor_id.clone().unwrap_or_default()) {
                        @match name(&e.actor_id) {
                            Some(n) => { (n) }
                            None => { (actor_label(e.actor_kind.as_str())) }
                        }
                    }
                    td title=(e.target_id.clone().unwrap_or_default()) {
                        @if let Some(k) = &e.target_kind { span.muted { (k.replace('_', " ")) " " } }
                        (name(&e.target_id).unwrap_or_default())
                    }
                    td { (name(&e.device_id).unwrap_or_default()) }
                    td { @if let Some(s) = summaries.get(&e.id) { span.summary { (s) } br; } code { (e.details) } }
                }
            }
        }
    } }
    }
}

/// An event code in words (`request_approved` → "Request approved"); the code stays on hover.
fn event_label(code: &str) -> String {
    let words = match code {
        "101" => "Elevated on demand (101)".to_string(),
        "106" => "Passive token (106)".to_string(),
        "300" => "Logon (300)".to_string(),
        c => c.replace('_', " "),
    };
    let mut it = words.chars();
    match it.next() {
        Some(f) => f.to_uppercase().chain(it).collect(),
        None => words,
    }
}

/// Who acted when no person or workstation is named.
fn actor_label(kind: &str) -> &'static str {
    match kind {
        "system" => "the appliance",
        "anonymous" => "someone not signed in",
        "device" => "a workstation",
        "api_token" => "an API token",
        _ => "someone",
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Downloads the filtered entries as CSV or NDJSON (`audit.export`; audited).
pub async fn export(
    state: web::Data<AppState>,
    cu: CurrentUser,
    slug: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let t = cu.tenant(&state, &slug).await?;
    let scope = cu.principal.scope(&t, Permission::AuditExport)?;
    let format = Format::parse(&q.format).ok_or_else(|| {
        WebError(crate::error::Error::validation(
            "format",
            "must be csv or ndjson",
        ))
    })?;
    let req = service::audit::ExportRequest {
        scope,
        all_tenants: cu.principal.is_msp_admin() && q.all.as_deref() == Some("1"),
        filter: service::audit::ListFilter {
            event: Some(q.event.trim().to_string()).filter(|s| !s.is_empty()),
            actor: Some(q.actor.trim().to_string()).filter(|s| !s.is_empty()),
            before_seq: None,
            since: date(&q.from, "from")?,
            until: date(&q.to, "to")?.map(|t| t.plus_secs(86_400)),
            limit: 0,
        },
        format,
    };
    let doc = service::audit::export(&state.ctx, &cu.principal, &cu.origin, req).await?;
    Ok(download(t.slug.as_str(), format, doc))
}

/// The export as an attachment named after the tenant.
pub fn download(slug: &str, format: Format, doc: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"audit-{slug}.{}\"",
                format.extension()
            ),
        ))
        .body(doc)
}

/// An optional `YYYY-MM-DD` filter value.
pub fn date(s: &str, field: &str) -> Result<Option<crate::clock::Timestamp>, WebError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    crate::clock::Timestamp::parse_date(s)
        .map(Some)
        .ok_or_else(|| {
            WebError(crate::error::Error::validation(
                field,
                "must be a date like 2026-11-23",
            ))
        })
}
