//! The signed-in layout: tenant switcher and permission-driven navigation.

use maud::{Markup, html};

use super::session::CurrentUser;
use super::ui::{self, Chrome, NavItem};
use crate::authz::Permission;
use crate::model::tenants::Tenant;

// Long on purpose: the portal's navigation, item after item, each with the permission that shows it.
pub fn page(
    cu: &CurrentUser,
    tenant: Option<&Tenant>,
    active: &str,
    title: &str,
    content: Markup,
) -> Markup {
    let mut nav = vec![NavItem {
        label: "Dashboard".into(),
        href: "/".into(),
        active: active == "dashboard",
    }];
    if let Some(t) = tenant {
        let perms = cu.principal.permissions_in(t).unwrap_or_default();
        let base = format!("/t/{}", t.slug);
        let mut add = |label: &str, path: &str, p: Permission| {
            if perms.contains(p) {
                nav.push(NavItem {
                    label: label.into(),
                    href: format!("{base}{path}"),
                    active: active == path,
                });
            }
        };
        add("Requests", "/requests", Permission::RequestsView);
        add("Devices", "/devices", Permission::DevicesView);
        add("Technician sessions", "/logins", Permission::DevicesView);
        add(
            "Application policies",
            "/policies",
            Permission::PoliciesView,
        );
        add("Users", "/users", Permission::UsersView);
        add("Endpoint users", "/endpoint-users", Permission::UsersView);
        add("Roles", "/roles", Permission::UsersView);
        add("Settings", "/settings", Permission::SettingsView);
        add("Audit", "/audit", Permission::AuditView);
    }
    if cu.principal.is_msp_staff() {
        nav.push(NavItem {
            label: "All requests".into(),
            href: "/requests".into(),
            active: active == "requests",
        });
    }
    if cu.principal.is_msp_admin() {
        nav.push(NavItem {
            label: "Tenants".into(),
            href: "/tenants".into(),
            active: active == "tenants",
        });
    }
    nav.push(NavItem {
        label: "My account".into(),
        href: "/account".into(),
        active: active == "account",
    });
    let topbar = html! {
        // Waiting requests in any of the person's tenants, refreshed in place.
        span #request-badge hx-get="/requests/badge" hx-trigger="load, every 10s" hx-swap="innerHTML" {}
        @if cu.tenants.len() > 1 {
            details.switcher {
                summary { (tenant.map(|t| t.name.as_str()).unwrap_or("Choose a tenant")) }
                ul { @for t in &cu.tenants { li { a href=(format!("/t/{}/", t.slug)) { (t.name) } } } }
            }
        } @else if let Some(t) = tenant { span { (t.name) } }
        span.who { (cu.user.first_name) " " (cu.user.last_name) }
        form method="post" action="/logout" hx-post="/logout" {
            (ui::csrf_input(&cu.csrf))
            button.secondary type="submit" { "Sign out" }
        }
    };
    ui::layout(
        &Chrome {
            csrf: Some(cu.csrf.clone()),
            nav,
            topbar: Some(topbar),
            banner: None,
        },
        title,
        content,
    )
}
