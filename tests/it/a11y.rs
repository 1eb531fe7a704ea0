//! Every signed-in page through axe-core (from the npm registry, used only here) in the real
//! headless Chromium: no serious or critical violation anywhere.

use std::time::Duration;

use fantoccini::Client;
use hourglass::service;

use crate::browser::{browser, complete_enrollment, wait_for};
use crate::support::*;

const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/browser/node_modules/axe-core/axe.min.js"
);

/// axe's serious and critical findings on the page shown now, one line each.
async fn violations(c: &Client, axe: &str) -> Vec<String> {
    c.execute(&format!("{axe}\nreturn true;"), vec![])
        .await
        .unwrap();
    let found = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
               done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) { return v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                   v.nodes.slice(0, 3).map(function (n) { return n.target.join(' ') + ' (' + (n.failureSummary || '') + ')'; }).join('; '); }));
             }).catch(function (e) { done(['axe failed: ' + e]); });",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Pages the crawl deliberately leaves out, with why.
const NOT_PAGES: &[&str] = &[
    "/status",           // a fragment
    "/healthz",          // plain text
    "/metrics",          // plain text
    "/assets/{path:.*}", // files
    "/login",            // signed out (checked below)
    "/login/mfa",        // signed out
    "/setup/{token}",    // signed out, one-time
    "/enroll/{token}",   // signed out, one-time
    "/requests/queue",   // a fragment of /requests
    "/requests/badge",   // a fragment of every page
    "/t/{slug}/requests/queue",
    "/t/{slug}/policies/export",    // a download
    "/t/{slug}/audit/export",       // a download
    "/t/{slug}/logins/{id}/reveal", // shown once, right after a login (journeys)
    "/t/{slug}",                    // the same page as /t/{slug}/
];

#[actix_web::test]
async fn every_signed_in_page_passes_axe() {
    let Some(b) = browser().await else { return };
    let axe = match std::fs::read_to_string(AXE) {
        Ok(a) => a,
        Err(_) if std::env::var("HOURGLASS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("{AXE} is missing: run `npm ci --prefix tests/browser`")
        }
        Err(_) => {
            eprintln!("SKIPPED axe test: run `npm ci --prefix tests/browser` first");
            return;
        }
    };
    let s = TestServer::start().await;
    let c = &b.client;

    // The sign-in page, as everyone first meets it.
    c.goto(&s.url("/login")).await.unwrap();
    let token =
        service::setup::headless_setup(s.ctx(), "Nikpot IT", "Nik", "Potter", "nik@nikpot.com")
            .unwrap();
    c.goto(&s.url(&format!("/enroll/{token}"))).await.unwrap();
    wait_for(c, "#enroll").await;
    let mut failures: Vec<String> = violations(c, &axe)
        .await
        .into_iter()
        .map(|v| format!("/enroll: {v}"))
        .collect();
    complete_enrollment(c, s.clock.now()).await;

    // Something on every page: a tenant, a workstation, a request, a policy, a rule, a user,
    // a webhook.
    let p = crate::people::admin_principal(&s).await;
    let o = Default::default();
    let t = service::tenants::create(
        s.ctx(),
        &p,
        service::tenants::NewTenant {
            name: "Acme".into(),
            slug: "acme".into(),
        },
        &o,
    )
    .await
    .unwrap();
    let (_, enroll, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 24, uses: 5 },
        &s.base,
        &o,
    )
    .await
    .unwrap();
    let d = crate::requests::Device::enroll(&s, &enroll).await;
    d.ask("erin", 30, "install the scanner driver").await;
    let mut p2 = p.clone();
    p2.mfa_at = Some(s.clock.now());
    let policy = service::policies::save(
        s.ctx(),
        &p2,
        &t,
        None,
        serde_json::from_value(serde_json::json!({"name": "Tools", "duration": "fixed",
            "hours": 8, "access": "specific", "rules": [{"kind": "path", "value": "/usr/bin/wireshark"}]}))
        .unwrap(),
        &o,
    )
    .await
    .unwrap();
    let user = service::users::create(
        s.ctx(),
        &p2,
        &t,
        service::users::NewUser {
            first_name: "Ada".into(),
            last_name: "Admin".into(),
            email: "ada@acme.test".into(),
            username: String::new(),
        },
        &o,
    )
    .await
    .unwrap()
    .user;
    let ids = [("{slug}", "acme".to_string()), ("{id}", String::new())];
    let fill = |path: &str| -> Option<String> {
        let mut out = path.replace(ids[0].0, &ids[0].1);
        if out.contains("{id}") {
            let id = if out.starts_with("/t/acme/devices/") {
                d.id.clone()
            } else if out.starts_with("/t/acme/users/") {
                user.id.to_string()
            } else if out.starts_with("/t/acme/policies/") {
                policy.id.clone()
            } else {
                return None;
            };
            out = out.replace("{id}", &id);
        }
        Some(out)
    };

    let mut visited = Vec::new();
    for (method, path) in hourglass::web::ROUTES {
        if *method != "get" || path.starts_with("/api/") || NOT_PAGES.contains(path) {
            continue;
        }
        let url = fill(path).unwrap_or_else(|| panic!("no id to show {path}"));
        c.goto(&s.url(&url)).await.unwrap();
        wait_for(c, "main h1").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for v in violations(c, &axe).await {
            failures.push(format!("{url}: {v}"));
        }
        visited.push(url);
    }
    // The MSP's own settings (backups), an error page, and the step-up page.
    for url in ["/t/nikpot-it/settings", "/t/acme/requests?state=bogus"] {
        c.goto(&s.url(url)).await.unwrap();
        wait_for(c, "main h1").await;
        for v in violations(c, &axe).await {
            failures.push(format!("{url}: {v}"));
        }
    }
    s.clock.advance_secs(6 * 60);
    c.goto(&s.url("/account/totp")).await.unwrap();
    wait_for(c, "form.step-up").await;
    for v in violations(c, &axe).await {
        failures.push(format!("step-up page: {v}"));
    }
    assert!(visited.len() >= 18, "{visited:?}");
    assert!(
        failures.is_empty(),
        "axe found serious or critical problems:\n{}",
        failures.join("\n")
    );
    b.client.clone().close().await.unwrap();
}
