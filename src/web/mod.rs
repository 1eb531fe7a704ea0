//! The portal: actix + maud + htmx. All routes are in `configure`.

pub mod assets;
pub mod error;
pub mod headers;
pub mod home;
pub mod ops;
pub mod ui;

use actix_web::web;

/// Every portal route, in one table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home_page))
        .route("/status", web::get().to(home::status_fragment))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::resource("/csp-report")
                .app_data(web::PayloadConfig::new(16 * 1024))
                .route(web::post().to(ops::csp_report)),
        )
        .route("/assets/{path:.*}", web::get().to(assets::serve));
}
