//! The portal and the management API: actix + maud + htmx. Every route is in the one table
//! below, which also feeds the authorization-matrix test (`ROUTES`).

pub mod account;
pub mod api;
pub mod api_logins;
pub mod api_policies;
pub mod api_requests;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod auto_approval;
pub mod connections;
pub mod csrf;
pub mod dashboard;
pub mod devices;
pub mod endpoint_users;
pub mod error;
pub mod fmt;
pub mod headers;
pub mod home;
pub mod logins;
pub mod nav;
pub mod ops;
pub mod policies;
pub mod policy_files;
pub mod refusals;
pub mod requests;
pub mod roles;
pub mod session;
pub mod step_up;
pub mod tenants;
pub mod ui;
pub mod users;
pub mod webhooks;

use actix_web::web;

/// Declares the route table once: `register` adds each path as one resource (so a wrong
/// method answers 405) and `ROUTES` lists (method, path) for tests.
macro_rules! route_table {
    ($($path:literal => { $($method:ident : $handler:path),+ $(,)? }),* $(,)?) => {
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        fn register(cfg: &mut web::ServiceConfig) {
            $( cfg.service(web::resource($path)$(.route(web::$method().to($handler)))+); )*
        }
    };
}

route_table! {
    "/" => { get: dashboard::index },
    "/status" => { get: home::status_fragment },
    "/healthz" => { get: ops::healthz },
    "/metrics" => { get: ops::metrics },
    "/assets/{path:.*}" => { get: assets::serve },
    "/login" => { get: auth::login_page, post: auth::login },
    "/login/mfa" => { get: auth::mfa_page, post: auth::mfa },
    "/logout" => { post: auth::logout },
    "/step-up" => { post: step_up::step_up },
    "/setup/{token}" => { get: auth::setup_page, post: auth::setup },
    "/enroll/{token}" => { get: auth::enroll_page, post: auth::enroll },
    "/account" => { get: account::account_page },
    "/account/password" => { post: account::change_password },
    "/account/totp" => { get: account::totp_page, post: account::change_totp },
    "/account/tokens" => { post: account::create_token },
    "/account/tokens/{id}/revoke" => { post: account::revoke_token },
    "/tenants" => { get: tenants::tenants_page, post: tenants::create },
    "/t/{slug}" => { get: dashboard::tenant_home },
    "/t/{slug}/" => { get: dashboard::tenant_home },
    "/t/{slug}/settings" => { get: tenants::settings_page, post: tenants::update },
    "/appliance/backup" => { post: tenants::backup_now },
    "/t/{slug}/users" => { get: users::users_page, post: users::create },
    "/t/{slug}/users/{id}" => { get: users::detail_page },
    "/t/{slug}/users/{id}/roles" => { post: users::roles },
    "/t/{slug}/users/{id}/tenants" => { post: users::tenants },
    "/t/{slug}/users/{id}/{action}" => { post: users::action },
    "/t/{slug}/roles" => { get: roles::roles_page, post: roles::create },
    "/t/{slug}/roles/{id}/delete" => { post: roles::delete },
    "/t/{slug}/devices" => { get: devices::devices_page },
    "/t/{slug}/devices/tokens" => { post: devices::create_token },
    "/t/{slug}/devices/tokens/{id}/revoke" => { post: devices::revoke_token },
    "/t/{slug}/devices/{id}" => { get: devices::detail_page },
    "/t/{slug}/devices/{id}/retire" => { post: devices::retire },
    "/t/{slug}/devices/{id}/alert/dismiss" => { post: devices::dismiss_alert },
    "/t/{slug}/devices/{id}/logins" => { post: logins::start },
    "/t/{slug}/devices/{id}/offline-code" => { get: logins::offline_code },
    "/t/{slug}/logins" => { get: logins::logins_page },
    "/t/{slug}/logins/{id}/reveal" => { get: logins::reveal },
    "/t/{slug}/logins/{id}/end" => { post: logins::end },
    "/requests" => { get: requests::across_page },
    "/requests/queue" => { get: requests::across_fragment },
    "/requests/badge" => { get: requests::badge },
    "/t/{slug}/requests" => { get: requests::requests_page },
    "/t/{slug}/requests/queue" => { get: requests::queue_fragment },
    "/t/{slug}/requests/{id}/{action}" => { post: requests::decide },
    "/t/{slug}/policies" => { get: policies::policies_page, post: policies::create },
    "/t/{slug}/endpoint-users" => { get: endpoint_users::page },
    "/t/{slug}/endpoint-users/{id}/link" => { post: endpoint_users::link },
    "/t/{slug}/policies/test" => { post: policies::test },
    "/t/{slug}/policies/export" => { get: policy_files::export },
    "/t/{slug}/policies/import" => { post: policy_files::import },
    "/t/{slug}/policies/{id}" => { get: policies::policy_page, post: policies::update },
    "/t/{slug}/policies/{id}/delete" => { post: policies::delete },
    "/t/{slug}/auto-approval" => { get: auto_approval::rules_page, post: auto_approval::create },
    "/t/{slug}/auto-approval/{id}/delete" => { post: auto_approval::delete },
    "/t/{slug}/webhooks" => { get: webhooks::webhooks_page, post: webhooks::create },
    "/t/{slug}/webhooks/{id}/delete" => { post: webhooks::delete },
    "/t/{slug}/audit" => { get: audit::audit_page },
    "/t/{slug}/audit/export" => { get: audit::export },
    "/api/v1/openapi.json" => { get: api::openapi },
    "/api/v1/tenants" => { get: api::tenants_list, post: api::tenants_create },
    "/api/v1/tenants/{slug}" => { get: api::tenant_get, patch: api::tenant_update },
    "/api/v1/tenants/{slug}/users" => { get: api::users_list, post: api::users_create },
    "/api/v1/tenants/{slug}/users/{id}/{action}" => { post: api::user_action },
    "/api/v1/tenants/{slug}/audit" => { get: api::audit_list },
    "/api/v1/tenants/{slug}/audit/export" => { get: api::audit_export },
    "/api/v1/tenants/{slug}/enrollment-tokens" => { post: api_requests::enrollment_token_create },
    "/api/v1/tenants/{slug}/requests" => { get: api_requests::requests_list },
    "/api/v1/tenants/{slug}/auto-approval-rules" => { get: api_requests::rules_list, post: api_requests::rules_create },
    "/api/v1/tenants/{slug}/auto-approval-rules/{id}" => { delete: api_requests::rules_delete },
    "/api/v1/tenants/{slug}/requests/{id}/{action}" => { post: api_requests::request_action },
    "/api/v1/tenants/{slug}/devices" => { get: api_requests::devices_list },
    "/api/v1/tenants/{slug}/devices/{id}" => { get: api_requests::device_get },
    "/api/v1/tenants/{slug}/devices/{id}/logins" => { post: api_logins::start },
    "/api/v1/tenants/{slug}/logins" => { get: api_logins::list },
    "/api/v1/tenants/{slug}/policies" => { get: api_policies::list, post: api_policies::create },
    "/api/v1/tenants/{slug}/policies/test" => { post: api_policies::test },
    "/api/v1/tenants/{slug}/policies/export" => { get: api_policies::export },
    "/api/v1/tenants/{slug}/policies/import" => { post: api_policies::import },
    "/api/v1/tenants/{slug}/policies/{id}" => { get: api_policies::get, put: api_policies::replace, delete: api_policies::delete },
    "/api/v1/tenants/{slug}/logins/{id}/end" => { post: api_logins::end },
}

/// Every portal and API route, with the CSRF guard on the portal's unsafe methods.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg);
    cfg.service(
        web::resource("/csp-report")
            .app_data(web::PayloadConfig::new(16 * 1024))
            .route(web::post().to(ops::csp_report)),
    );
}
