//! The portal's start page and its live status fragment.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::error::WebError;
use super::ui;
use crate::app::AppState;
use crate::service;

pub const STATUS_ID: &str = "appliance-status";

pub async fn home_page(_state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let content = html! {
        main {
            h1 { "Hourglass" }
            div.card {
                p { "Just-in-time privileged access: nobody keeps standing admin rights." }
                div id=(STATUS_ID) hx-get="/status" hx-trigger="load" hx-swap="innerHTML" {
                    span.muted { "Checking the appliance…" }
                }
            }
        }
    };
    Ok(html_response(ui::bare_page("Home", content)))
}

/// A fragment the start page loads through htmx: proves scripts and requests work under the CSP.
pub async fn status_fragment(state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let now = state.ctx.clock.now();
    let healthy = service::system::health(&state.ctx.db, now).await.is_ok();
    let report = service::audit::verify(&state.ctx.db).await?;
    Ok(html_response(status_view(
        healthy,
        report.broken.is_none(),
        env!("CARGO_PKG_VERSION"),
    )))
}

fn status_view(healthy: bool, chain_ok: bool, version: &str) -> Markup {
    html! {
        dl.kv data-status="loaded" {
            dt { "Database" } dd class=(if healthy { "ok" } else { "bad" }) { (if healthy { "accepting writes" } else { "unavailable" }) }
            dt { "Audit chain" } dd class=(if chain_ok { "ok" } else { "bad" }) { (if chain_ok { "verified" } else { "BROKEN" }) }
            dt { "Version" } dd { (version) }
        }
    }
}

pub fn html_response(m: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(m.into_string())
}
