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

/// A full page with the top bar and, when there is navigation, the left bar.
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
                header.topbar {
                    a.brand href="/" { "⧗ Hourglass" }
                    span.spacer {}
                    @if let Some(t) = &chrome.topbar { (t) }
                }
                div id=(FLASH_ID) {}
                @if chrome.nav.is_empty() {
                    (content)
                } @else {
                    div.layout {
                        nav.side {
                            @for item in &chrome.nav {
                                a href=(item.href) class=[item.active.then_some("active")] { (item.label) }
                            }
                        }
                        div { (content) }
                    }
                }
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

/// The fresh-code prompt for sensitive actions (SESS-05). htmx posts it with the CSRF header.
pub fn step_up_form(next: Option<&str>) -> Markup {
    html! {
        form.stack.step-up hx-post="/step-up" hx-target="this" hx-swap="outerHTML" method="post" action="/step-up" {
            p { "This action needs a fresh code from your authenticator app. Enter it, then repeat the action." }
            @if let Some(n) = next { input type="hidden" name="next" value=(n); }
            label { "Authenticator code" input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required; }
            button type="submit" { "Confirm" }
        }
    }
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
