//! The portal in a real headless Chromium, driven over WebDriver (Debian's chromium-driver).
//! Without a browser the test is skipped with a message, unless HOURGLASS_REQUIRE_BROWSER=1
//! (set by CI), which turns a missing browser into a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver and a headless Chromium session, or explains why it cannot.
pub async fn browser() -> Option<Browser> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        if std::env::var("HOURGLASS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "HOURGLASS_REQUIRE_BROWSER=1 but {missing:?} not installed (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!(
            "SKIPPED browser test: {missing:?} not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    _profile: profile,
                });
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a session: {last:?}");
}

/// The CSP violation counter, read from /metrics.
async fn csp_violations(s: &TestServer) -> u64 {
    metric(s, "hourglass_csp_violations_total").await as u64
}

pub async fn fill(c: &Client, name: &str, value: &str) {
    let e = c
        .find(Locator::Css(&format!("[name={name}]")))
        .await
        .unwrap_or_else(|e| panic!("no field {name}: {e:?}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Waits up to 15 s for `css`. A lookup that a navigation in progress cut short ("aborted by
/// navigation") is tried again like a missing element; the last error is shown on failure.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    let mut last = None;
    for _ in 0..150 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => return e,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: {last:?}")
}

/// Waits until `css` holds `needle` (a live list redraws by itself), failing loudly with what
/// the page showed instead.
pub async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        if let Ok(es) = c.find_all(Locator::Css(css)).await {
            for e in es {
                if let Ok(t) = e.text().await {
                    if t.contains(needle) {
                        return t;
                    }
                    last = t;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = c.source().await.unwrap_or_default();
    panic!("waited 15 s for {needle:?} in {css}; last seen {last:?}; page: {page}");
}

/// Clicks `css`, finding it again if a live redraw replaced it between finding and clicking
/// (a stale element reference).
pub async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..50 {
        match wait_for(c, css).await.click().await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} could not be clicked: {last:?}")
}

/// Completes an enrollment (or setup) page in the browser: reads the authenticator key it
/// shows, sets the password and the first code. Returns the TOTP secret.
pub async fn complete_enrollment(c: &Client, now: hourglass::clock::Timestamp) -> Vec<u8> {
    let key = wait_for(c, ".card code").await.text().await.unwrap();
    let secret = totp_rs::Secret::try_from_base32(key.trim())
        .unwrap()
        .as_bytes()
        .to_vec();
    fill(c, "password", PASSWORD).await;
    fill(c, "password_confirm", PASSWORD).await;
    fill(
        c,
        "code",
        &hourglass::crypto::totp::code_at(&secret, now).unwrap(),
    )
    .await;
    click(c, "#enroll button[type=submit]").await;
    wait_for(c, "nav.side").await;
    secret
}

pub const PASSWORD: &str = "violet-anchor-lantern-42";

/// Enrollment → sign-out → sign-in with password and code → add a user, all through htmx
/// under the strict CSP; then a deliberate violation proves the page itself caused none.
#[actix_web::test]
async fn sign_in_with_password_and_totp_then_add_a_user() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let c = &b.client;
    let before = csp_violations(&s).await;
    let token = hourglass::service::setup::headless_setup(
        s.ctx(),
        "Nikpot IT",
        "Nik",
        "Potter",
        "nik@nikpot.com",
    )
    .unwrap();

    c.goto(&s.url(&format!("/enroll/{token}"))).await.unwrap();
    let key = wait_for(c, ".card code").await.text().await.unwrap();
    let secret = totp_rs::Secret::try_from_base32(key.trim())
        .unwrap()
        .as_bytes()
        .to_vec();
    assert!(secret.len() >= 20, "160-bit TOTP secret");
    fill(c, "password", PASSWORD).await;
    fill(c, "password_confirm", PASSWORD).await;
    fill(
        c,
        "code",
        &hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap(),
    )
    .await;
    c.find(Locator::Css("#enroll button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "nav.side").await;
    let version = c
        .execute("return window.htmx ? htmx.version : null", vec![])
        .await
        .unwrap();
    assert_eq!(version, serde_json::json!("2.0.11"));

    // Sign out and back in: password, then the next code (the enrollment code is spent).
    c.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#login").await;
    fill(c, "email", "nik@nikpot.com").await;
    fill(c, "password", PASSWORD).await;
    c.find(Locator::Css("#login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "#mfa").await;
    s.clock.advance_secs(30);
    fill(
        c,
        "code",
        &hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap(),
    )
    .await;
    c.find(Locator::Css("#mfa button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "nav.side").await;

    // Add a user from the tenant's Users page.
    c.goto(&s.url("/t/nikpot-it/users")).await.unwrap();
    wait_for(c, "#add-user").await;
    fill(c, "first_name", "Ada").await;
    fill(c, "last_name", "Tech").await;
    fill(c, "email", "ada@nikpot.com").await;
    c.find(Locator::Css("#add-user button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let card = wait_for(c, ".enrollment-link").await.text().await.unwrap();
    assert!(
        card.contains("ada@nikpot.com (ada)") && card.contains("/enroll/"),
        "{card}"
    );

    // Create a customer tenant from the Tenants page; htmx follows to its settings.
    c.goto(&s.url("/tenants")).await.unwrap();
    fill(c, "name", "Acme Corp").await;
    c.find(Locator::Css("#new-tenant button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = wait_for(c, "main h1").await;
    let mut tries = 0;
    while !h1.text().await.unwrap_or_default().contains("Acme Corp") && tries < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tries += 1;
    }
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/t/acme-corp/settings"
    );

    // Add device: the enrollment command line appears, with the pinned fingerprint.
    c.goto(&s.url("/t/acme-corp/devices")).await.unwrap();
    wait_for(c, "#add-device").await;
    c.find(Locator::Css("#add-device button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let cmd = wait_for(c, ".enroll-command code")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        cmd.starts_with("hourglass agent enroll --server https://") && cmd.contains(&s.fingerprint),
        "{cmd}"
    );
    // …and next to it the line an RMM runs on Windows, with the same token and pin.
    let msi = wait_for(c, ".enroll-command code.windows-command")
        .await
        .text()
        .await
        .unwrap();
    let token = cmd
        .split("--token ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        msi.starts_with("msiexec /i hourglass-agent.msi /qn SERVER=https://")
            && msi.contains(&format!("TOKEN={token}"))
            && msi.contains(&format!("FINGERPRINT={}", s.fingerprint)),
        "{msi}"
    );

    // Every other page renders under the same CSP.
    c.goto(&s.url("/t/nikpot-it/users")).await.unwrap();
    wait_for(c, "#users-table a").await.click().await.unwrap();
    wait_for(c, ".actions").await;
    for (path, heading) in [
        ("/", "Dashboard"),
        ("/t/nikpot-it/", "Nikpot IT"),
        ("/t/nikpot-it/roles", "Roles"),
        ("/t/nikpot-it/devices", "Workstations"),
        ("/t/nikpot-it/requests", "Requests"),
        ("/requests", "Requests in all tenants"),
        ("/t/nikpot-it/auto-approval", "Auto-approval rules"),
        ("/t/nikpot-it/webhooks", "Notifications"),
        ("/t/nikpot-it/policies", "Application policies"),
        ("/t/nikpot-it/logins", "Technician sessions"),
        ("/t/nikpot-it/settings", "Settings"),
        ("/t/nikpot-it/audit", "Audit log"),
        ("/account", "My account"),
        ("/account/totp", "authenticator"),
    ] {
        c.goto(&s.url(path)).await.unwrap();
        let h = wait_for(c, "main h1").await.text().await.unwrap();
        assert!(h.contains(heading), "{path}: {h}");
    }

    // A new request appears in the live queue without a reload, and is approved there.
    c.goto(&s.url("/t/acme-corp/requests")).await.unwrap();
    wait_for(c, "#request-queue").await;
    let p = crate::people::admin_principal(&s).await;
    let acme = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme-corp"))
        .await
        .unwrap()
        .unwrap();
    let n = hourglass::service::devices::NewToken { hours: 1, uses: 1 };
    let (_, tok, _) = hourglass::service::devices::create_token(
        s.ctx(),
        &p,
        &acme,
        n,
        "https://x",
        &Default::default(),
    )
    .await
    .unwrap();
    let req = hourglass::proto::EnrollRequest {
        token: tok,
        hostname: "W11-BROWSER".into(),
        os: "linux".into(),
        os_version: "12".into(),
        agent_version: "0".into(),
    };
    let dev = hourglass::service::devices::enroll(s.ctx(), req, &Default::default())
        .await
        .unwrap()
        .device_id;
    let d = s
        .ctx()
        .db
        .read(move |r| hourglass::store::devices::credentials(r, dev))
        .await
        .unwrap()
        .unwrap()
        .device;
    let ask = hourglass::service::requests::Ask {
        account: "erin".into(),
        minutes: 30,
        reason: "install the scanner".into(),
        ticket: Some("INC-9".into()),
        kind: "admin".into(),
        app: None,
    };
    hourglass::service::requests::create(s.ctx(), &d, ask, &Default::default())
        .await
        .unwrap();
    let row = wait_for(c, "tr.request").await.text().await.unwrap();
    assert!(
        row.contains("erin") && row.contains("W11-BROWSER") && row.contains("install the scanner"),
        "{row}"
    );
    // The decision answers with the queue and a notice, not a new page: a mark left in
    // the page survives it.
    c.execute("window.samePage = 'yes'; return true;", vec![])
        .await
        .unwrap();
    c.find(Locator::Css("tr.request form.approve button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = wait_for(c, "#flash .notice").await.text().await.unwrap();
    assert_eq!(notice, "Approved: 30 minutes for erin on W11-BROWSER.");
    // No agent confirms it here: the session shows as waiting, never with a countdown.
    let active = wait_for(c, "tr.session").await.text().await.unwrap();
    assert!(active.contains("waiting for the workstation"), "{active}");
    let same = c
        .execute("return window.samePage || 'reloaded';", vec![])
        .await
        .unwrap();
    assert_eq!(same, "yes", "approving reloaded the page");

    // A second request: the badge counts it; a deny reason typed into the queue survives
    // the queue's refreshes, and the denial reaches the history with it.
    let ask = hourglass::service::requests::Ask {
        account: "finn".into(),
        minutes: 15,
        reason: "update the firmware".into(),
        ticket: None,
        kind: "admin".into(),
        app: None,
    };
    hourglass::service::requests::create(s.ctx(), &d, ask, &Default::default())
        .await
        .unwrap();
    let reason = wait_for(c, "tr.request input[name=reason]").await;
    // Count the queue's refreshes in the page itself, to wait for two of them (a positive
    // signal) before checking that the typed reason survived.
    c.execute(
        "window.queueFetches = 0;
         document.body.addEventListener('htmx:afterRequest', e => {
           if (e.detail.pathInfo.requestPath.endsWith('/requests/queue')) window.queueFetches++;
         });
         return true;",
        vec![],
    )
    .await
    .unwrap();
    reason.send_keys("not on a Friday").await.unwrap();
    let mut fetched = 0;
    for _ in 0..150 {
        let n = c
            .execute("return window.queueFetches;", vec![])
            .await
            .unwrap();
        fetched = n.as_u64().unwrap_or(0);
        if fetched >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fetched >= 2,
        "the queue refreshed {fetched} time(s) in 15 s, not twice"
    );
    let kept = c
        .find(Locator::Css("tr.request input[name=reason]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        kept, "not on a Friday",
        "two refreshes later the typed reason is still there"
    );
    let badge = wait_for(c, "#request-badge .badge")
        .await
        .text()
        .await
        .unwrap();
    assert!(badge.contains("1 waiting"), "{badge}");
    // The queue is re-rendered every 2 s: an element found just before a refresh goes
    // stale, so the click and the read are retried until the page has moved on.
    let mut denied = String::new();
    for _ in 0..150 {
        if let Ok(b) = c.find(Locator::Css("tr.request form.deny button")).await {
            let _ = b.click().await;
        }
        if let Ok(rows) = c.find_all(Locator::Css("table.history tbody tr")).await {
            for r in rows {
                if let Ok(t) = r.text().await
                    && t.contains("finn")
                {
                    denied = t;
                }
            }
        }
        if !denied.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(denied.contains("not on a Friday"), "{denied}");
    // The history came in by itself (hg-requests-changed), in the same page.
    let same = c
        .execute("return window.samePage || 'reloaded';", vec![])
        .await
        .unwrap();
    assert_eq!(same, "yes", "denying reloaded the page");

    c.execute("var i = document.createElement('img'); i.src = 'https://csp-probe.invalid/x.png'; document.body.appendChild(i); return true;", vec![])
        .await
        .unwrap();
    let mut seen = before;
    for _ in 0..100 {
        seen = csp_violations(&s).await;
        if seen > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, before + 1, "the probe is the only CSP violation");
    b.client.clone().close().await.unwrap();
    s.stop().await;
}
