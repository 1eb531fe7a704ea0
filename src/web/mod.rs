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
    // Resources (not bare routes) so a wrong method answers 405, not 404.
    cfg.service(web::resource("/").route(web::get().to(home::home_page)))
        .service(web::resource("/status").route(web::get().to(home::status_fragment)))
        .service(web::resource("/healthz").route(web::get().to(ops::healthz)))
        .service(web::resource("/metrics").route(web::get().to(ops::metrics)))
        .service(
            web::resource("/csp-report")
                .app_data(web::PayloadConfig::new(16 * 1024))
                .route(web::post().to(ops::csp_report)),
        )
        .service(web::resource("/assets/{path:.*}").route(web::get().to(assets::serve)));
}
