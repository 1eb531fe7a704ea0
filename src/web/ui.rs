//! The one layout (the only place with `<head>`, navigation and the CSRF token) and small
//! shared components. Components are plain functions returning `Markup`.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets;

/// htmx settings read from a meta tag (JSON, no eval): no eval, no inline indicator styles
/// (the CSP forbids them), no script tags in swapped content, same-origin requests only.
/// Validation errors (422) and refusals are swapped too: the server retargets them.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"4..","swap":true,"error":false},{"code":"5..","swap":true,"error":true}]}"#;

/// Where htmx error messages land.
pub const FLASH_ID: &str = "flash";

/// A navigation entry in the left bar.
pub struct NavItem {
    pub label: String,
    pub href: String,
    pub active: bool,
}

/// What the layout needs to know about the viewer.
#[derive(Default)]
pub struct Chrome {
    /// Synchronizer token, sent by htmx on every request (`hx-headers` on `<body>`).
    pub csrf: Option<String>,
    pub nav: Vec<NavItem>,
    /// Right side of the top bar (account menu, tenant switcher).
    pub topbar: Option<Markup>,
    /// A line under the top bar on every page (the demo's "demo data" notice).
    pub banner: Option<Markup>,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · Hourglass" }
            link rel="stylesheet" href=(assets::url("hourglass.css"));
            script src=(assets::url("vendor/htmx/htmx.min.js")) defer {}
            script src=(assets::url("hourglass.js")) defer {}
        }
    }
}

/// A full page with the top bar and, when there is navigation, the left bar (behind a menu
/// button on narrow screens), a skip link, and the dialog step-up opens (`#step-up-dialog`).
pub fn layout(chrome: &Chrome, title: &str, content: Markup) -> Markup {
    let hx_headers = chrome
        .csrf
        .as_ref()
        .map(|t| serde_json::json!({ "X-CSRF-Token": t }).to_string());
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=[hx_headers] {
                a.skip-link href="#main" { "Skip to content" }
                header.topbar {
                    @if !chrome.nav.is_empty() {
                        button.menu-toggle type="button" aria-controls="side-nav" aria-expanded="false" data-menu-toggle { "Menu" }
                    }
                    a.brand href="/" {
                        img src=(assets::url("brand.svg")) alt="" width="22" height="22";
                        span { "Hourglass" }
                    }
                    span.spacer {}
                    @if let Some(t) = &chrome.topbar { div.topbar-items { (t) } }
                }
                @if let Some(b) = &chrome.banner { div.banner role="status" { (b) } }
                div id=(FLASH_ID) aria-live="polite" {}
                @if chrome.nav.is_empty() {
                    div #main tabindex="-1" { (content) }
                } @else {
                    div.layout {
                        nav.side #side-nav aria-label="Main" {
                            @for item in &chrome.nav {
                                a href=(item.href) class=[item.active.then_some("active")] aria-current=[item.active.then_some("page")] { (item.label) }
                            }
                        }
                        div.content #main tabindex="-1" { (content) }
                    }
                }
                dialog #step-up-dialog aria-labelledby="step-up-title" {}
            }
        }
    }
}

/// A page without navigation (errors, sign-in).
pub fn bare_page(title: &str, content: Markup) -> Markup {
    layout(&Chrome::default(), title, content)
}

/// A hidden CSRF input for plain forms (htmx requests send the header instead).
pub fn csrf_input(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// The only `PreEscaped` use: a constant non-breaking space.
pub fn nbsp() -> Markup {
    PreEscaped("&nbsp;".to_string())
}

/// A labelled input with its validation message.
pub fn field(label: &str, name: &str, kind: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        label {
            (label)
            input type=(kind) name=(name) value=(value) aria-invalid=[error.map(|_| "true")];
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// A form-level error list (validation messages from the server).
pub fn form_error(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { div.flash.error role="alert" { (e) } } }
}
