//! The appliance status fragment (database, audit chain, version).

use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::error::WebError;
use crate::http::AppState;
use crate::service;

/// Appliance health as an htmx fragment.
pub async fn status_fragment(state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let now = state.ctx.clock.now();
    let healthy = service::system::health(&state.ctx.db, &state.ctx.cfg.storage, now)
        .await
        .is_ok();
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

/// An htmx fragment answering a form: 200, or 422 when it reports what was wrong.
pub fn fragment(m: Markup, ok: bool) -> HttpResponse {
    let mut r = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::UnprocessableEntity()
    };
    r.content_type("text/html; charset=utf-8")
        .body(m.into_string())
}

/// A refused form (422): the message goes into the form's own error slot (`slot` is its id),
/// so results shown next to the form (one-time secrets) stay where they are.
pub fn invalid(slot: &str, msg: &str) -> HttpResponse {
    HttpResponse::UnprocessableEntity()
        .insert_header(("HX-Retarget", format!("#{slot}")))
        .insert_header(("HX-Reswap", "innerHTML"))
        .content_type("text/html; charset=utf-8")
        .body(super::ui::form_error(Some(msg)).into_string())
}
