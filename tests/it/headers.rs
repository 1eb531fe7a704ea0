//! WEB-03 headers on every response, errors included; request ids; no internals in a 5xx.

use actix_web::{test as atest, web};

use crate::support::*;

fn assert_security_headers(h: &reqwest::header::HeaderMap, what: &str) {
    let get = |k: &str| {
        h.get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{what}: no {k}"))
    };
    let csp = get("content-security-policy");
    for d in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(d), "{what}: CSP lacks {d}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    let hsts = get("strict-transport-security");
    let max_age: u64 = hsts
        .trim_start_matches("max-age=")
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age >= 31_536_000 && hsts.contains("includeSubDomains"),
        "{what}: {hsts}"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(
        get("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
        "{what}"
    );
    assert_eq!(get("x-request-id").len(), 32, "{what}");
    assert!(h.get("server").is_none(), "{what}: Server header present");
}

#[actix_web::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let mut s = TestServer::start().await;
    let c = s.client();

    let ok = c.get(s.url("/login")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_security_headers(ok.headers(), "200");
    assert_eq!(ok.headers()["cache-control"], "no-store");

    let missing = c.get(s.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_security_headers(missing.headers(), "404");
    let id = missing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        missing.text().await.unwrap().contains(&id),
        "the error page echoes the request id"
    );

    // Unsafe methods meet the CSRF guard before routing; TRACE reaches routing and is refused.
    let wrong_method = c.delete(s.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 403);
    assert_security_headers(wrong_method.headers(), "403");
    let trace = c
        .request(reqwest::Method::TRACE, s.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 405);

    // A real 500 from a real route: an attacker dropped the audit table under the server.
    let db = rusqlite::Connection::open(s.data_dir().join("hourglass.db")).unwrap();
    db.execute_batch("DROP TABLE audit;").unwrap();
    let boom = c.get(s.url("/status")).send().await.unwrap();
    assert_eq!(boom.status(), 500);
    assert_security_headers(boom.headers(), "500");
    let id = boom.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = boom.text().await.unwrap();
    assert!(body.contains(&id), "{body}");
    assert!(
        !body.contains("audit") && !body.contains("database") && !body.contains("no such table"),
        "{body}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn assets_are_embedded_and_cached_for_a_year() {
    let mut s = TestServer::start().await;
    let c = s.client();
    let page = c
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let src = page
        .split("script src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(
        src.starts_with("/assets/vendor/htmx/htmx.min.js?v="),
        "{src}"
    );
    let js = c.get(s.url(&src)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_security_headers(js.headers(), "asset");
    let etag = js.headers()["etag"].clone();
    assert!(
        js.text().await.unwrap().contains("2.0.11"),
        "the vendored htmx is 2.0.11"
    );
    let again = c
        .get(s.url(&src))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(
        c.get(s.url("/assets/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(s.url("/assets/vendor/htmx/LICENSE"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

/// A panicking handler still answers 500 with headers and only the request id (OPS-02),
/// and the worker survives to serve the next request.
#[actix_web::test]
async fn a_panicking_handler_answers_500_with_only_a_request_id() {
    let mut s = TestServer::start().await;
    let state = web::Data::new(hourglass::http::AppState::new(s.ctx().clone()));
    let app = atest::init_service(hourglass::app::build_app(state).service(
        web::resource("/test-panic").route(web::get().to(|| async {
            if true {
                panic!("secret internal detail");
            }
            "unreachable"
        })),
    ))
    .await;
    // Without the request the middleware hands actix a finished response inside the error.
    let err = atest::try_call_service(
        &app,
        atest::TestRequest::get().uri("/test-panic").to_request(),
    )
    .await
    .err()
    .unwrap();
    let res = err.error_response();
    assert_eq!(res.status(), 500);
    let id = res
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(res.headers().contains_key("content-security-policy"));
    let body = String::from_utf8(
        actix_web::body::to_bytes(res.into_body())
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        body.contains(&id) && !body.contains("secret internal detail"),
        "{body}"
    );
    let next =
        atest::call_service(&app, atest::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(next.status(), 200);
    s.stop().await;
}
