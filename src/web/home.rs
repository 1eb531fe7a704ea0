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

/// A portal mutation's answer to htmx: the changed fragment swapped into `#slot`, its
/// version (so the next poll of a live list draws nothing), and events for the page
/// (`HX-Trigger`): `hg-notice` shows `notice` in the flash area, `changed` lets other parts
/// of the page that show the same things fetch themselves again.
pub fn updated(
    slot: &str,
    version: Option<String>,
    m: Markup,
    changed: &str,
    notice: &str,
) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.insert_header(("HX-Retarget", format!("#{slot}")))
        .insert_header(("HX-Reswap", "innerHTML"))
        .insert_header(("HX-Trigger", trigger(changed, notice)))
        .content_type("text/html; charset=utf-8");
    if let Some(v) = version {
        r.insert_header(("X-Fragment-Version", v));
    }
    r.body(m.into_string())
}

/// A mutation's answer to htmx when its change shows in one section of a page: the page as
/// it now is, of which htmx swaps in only `#slot` (`HX-Reselect`), with the notice and the
/// `changed` event as in `updated`. The rest of the page (a half-filled form, the scroll
/// position) stays as it was.
pub fn section(mut page: HttpResponse, slot: &str, changed: &str, notice: &str) -> HttpResponse {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let target = format!("#{slot}");
    for (name, value) in [
        ("hx-retarget", target.clone()),
        ("hx-reselect", target),
        ("hx-reswap", "outerHTML".to_string()),
        ("hx-trigger", trigger(changed, notice)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            page.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    page
}

/// The `HX-Trigger` JSON, ASCII only (a header value): other characters as `\uXXXX`.
fn trigger(changed: &str, notice: &str) -> String {
    let json = serde_json::json!({ "hg-notice": notice, changed: true }).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trigger_header_is_ascii_json_that_reads_back_the_same() {
        let t = super::trigger("hg-requests-changed", "Approved: 60 min for jörg on WS–1 ✓");
        assert!(t.is_ascii(), "{t}");
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["hg-notice"], "Approved: 60 min for jörg on WS–1 ✓");
        assert_eq!(v["hg-requests-changed"], true);
    }
}
