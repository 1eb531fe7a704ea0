//! How the crate's errors look on the portal: a full error page with the request id.
//! A 5xx shows only that id, never the internal message (OPS-02).

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::headers::{current_request_id, is_htmx};
use super::ui;
use crate::error::Error;

#[derive(Debug)]
pub struct WebError(pub Error);

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        WebError(e)
    }
}

pub use crate::http::status_of;

/// The message a client may see.
pub fn public_message(e: &Error) -> String {
    match e {
        Error::NotFound => "The page or item you asked for does not exist.".into(),
        Error::Validation { field, msg } => super::fmt::validation_message(field, msg),
        e if e.is_internal() => "Something went wrong on the appliance.".into(),
        e => e.to_string(),
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let request_id = current_request_id().unwrap_or_default();
        if self.0.is_internal() {
            tracing::error!(request_id = %request_id, error = %self.0, "request failed");
        }
        let htmx = is_htmx();
        // Not signed in (or the session ended): back to the sign-in page.
        if matches!(self.0, Error::Unauthenticated) {
            return if htmx {
                HttpResponse::Unauthorized()
                    .insert_header(("HX-Redirect", "/login"))
                    .finish()
            } else {
                HttpResponse::SeeOther()
                    .insert_header(("Location", "/login"))
                    .finish()
            };
        }
        if htmx {
            let body = html! {
                div.flash.error role="alert" {
                    (public_message(&self.0))
                    @if self.0.is_internal() { " " span.muted { "(request " (request_id) ")" } }
                }
            };
            return HttpResponse::build(status)
                .insert_header(("HX-Retarget", format!("#{}", ui::FLASH_ID)))
                .insert_header(("HX-Reswap", "innerHTML"))
                .content_type(ContentType::html())
                .body(body.into_string());
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = ui::bare_page(
            title,
            html! {
                main.error-page {
                    h1 { (status.as_u16()) " " (title) }
                    p { (public_message(&self.0)) }
                    p.muted { "Request id: " code { (request_id) } }
                    p { a href="/" { "Back to the start page" } }
                }
            },
        );
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(body.into_string())
    }
}

/// The answer for any path that matches no route: JSON under the management API, a page
/// elsewhere.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        return HttpResponse::from_error(super::api::ApiError(Error::NotFound));
    }
    HttpResponse::from_error(WebError(Error::NotFound))
}
