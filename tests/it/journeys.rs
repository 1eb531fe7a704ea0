//! Journeys in the real headless Chromium, walked as a person walks them: from what `serve`
//! prints, through the step-up prompt after the five-minute window (the manual clock moved),
//! at phone width, with a real agent on a throw-away root showing what happened there.

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, Locator};
use hourglass::clock::Clock;
use hourglass::service;

use crate::agent::{eventually, sudoers};
use crate::browser::{browser, click, complete_enrollment, fill, wait_for, wait_text};
use crate::support::*;

/// A local account on a throw-away root (what `adduser` would leave behind).
pub fn add_local_user(root: &Path, name: &str, uid: u32) {
    use std::io::Write;
    let append = |file: &str, line: String| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(file))
            .unwrap();
        writeln!(f, "{line}").unwrap();
    };
    append(
        "etc/passwd",
        format!("{name}:x:{uid}:{uid}::/home/{name}:/bin/bash"),
    );
    append("etc/shadow", format!("{name}:*:19000:0:99999:7:::"));
    append("etc/group", format!("{name}:x:{uid}:"));
    append("etc/gshadow", format!("{name}:!::"));
}

/// Accepts the browser's confirmation dialog (htmx's `hx-confirm`) once it is up.
async fn accept_confirm(c: &Client) {
    for _ in 0..60 {
        if c.accept_alert().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no confirmation dialog appeared");
}

/// Removes a local account from a throw-away root (`userdel` without the home).
pub fn remove_local_user(root: &Path, name: &str) {
    for file in ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"] {
        let p = root.join(file);
        let kept: Vec<String> = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .filter(|l| l.split(':').next() != Some(name))
            .map(str::to_string)
            .collect();
        std::fs::write(&p, kept.join("\n") + "\n").unwrap();
    }
}

/// Enters a fresh code into whichever step-up prompt is showing (the page or the dialog).
async fn step_up(c: &Client, s: &TestServer, secret: &[u8]) {
    let code = hourglass::crypto::totp::code_at(secret, s.clock.now()).unwrap();
    let field = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(
            // The closed dialog keeps its last form: only an open one counts.
            "main form.step-up input[name=step_up_code], #step-up-dialog[open] input[name=code], main form.step-up input[name=code]",
        ))
        .await
        .unwrap_or_else(|e| panic!("no step-up prompt: {e:?}"));
    field.send_keys(&code).await.unwrap();
    let form = field
        .find(Locator::XPath("./ancestor::form"))
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The admin of a fresh appliance, signed in through the enrollment page.
async fn signed_in_admin(c: &Client, s: &TestServer) -> Vec<u8> {
    let token =
        service::setup::headless_setup(s.ctx(), "Nikpot IT", "Nik", "Potter", "nik@nikpot.com")
            .unwrap();
    c.goto(&s.url(&format!("/enroll/{token}"))).await.unwrap();
    complete_enrollment(c, s.clock.now()).await
}

/// Tenant `acme` and an enrollment token for it.
async fn acme(s: &TestServer) -> String {
    let p = crate::people::admin_principal(s).await;
    let t = service::tenants::create(
        s.ctx(),
        &p,
        service::tenants::NewTenant {
            name: "Acme".into(),
            slug: "acme".into(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let (_, token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 24, uses: 5 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    token
}

/// `agent request-admin` on the workstation, as the end user.
fn request_admin(ws: &crate::agent::Workstation, user: &str, minutes: &str, why: &str) {
    let out = hourglass()
        .args([
            "agent",
            "request-admin",
            "--user",
            user,
            "--minutes",
            minutes,
        ])
        .args(["--reason", why])
        .args(ws.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The newest request of `account` in tenant acme.
async fn latest_request(s: &TestServer, account: &str) -> hourglass::model::requests::Request {
    let a = account.to_string();
    s.ctx()
        .db
        .read(move |r| {
            let t = hourglass::store::tenants::by_slug(r, "acme")?.unwrap();
            let f = hourglass::store::requests::Filter {
                state: None,
                who: Some(a),
            };
            Ok(
                hourglass::store::requests::list(r, &hourglass::authz::system_scope(t.id), &f, 1)?
                    .remove(0),
            )
        })
        .await
        .unwrap()
}

async fn request_id_of(s: &TestServer, account: &str) -> String {
    latest_request(s, account).await.id.to_string()
}

/// The state and approved minutes of `account`'s newest request.
async fn request_row(s: &TestServer, account: &str) -> (String, Option<u32>) {
    let r = latest_request(s, account).await;
    (r.state.as_str().to_string(), r.minutes_approved)
}

/// First run as a new MSP meets it: the setup link is read from `serve`'s own output, setup
/// is completed with a code, and the first customer is created from the dashboard's hint.
#[actix_web::test]
async fn first_run_from_the_link_serve_prints() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let dir = tempfile::tempdir().unwrap();
    let mut child = hourglass()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    let mut link = None;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push(line.clone());
        if let Some(l) = line.strip_prefix("First-run setup (one-time link, valid 24 hours): ") {
            link = Some(l.to_string());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let link = link.unwrap_or_else(|| panic!("no setup link in: {said:?}"));
    assert!(
        link.starts_with("https://127.0.0.1:") && link.contains("/setup/"),
        "the address actually listened on: {link}"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("listening on https://127.0.0.1:")),
        "{said:?}"
    );

    c.goto(&link).await.unwrap();
    wait_for(c, "#enroll").await;
    fill(c, "msp_name", "Nikpot IT").await;
    fill(c, "first_name", "Nik").await;
    fill(c, "last_name", "Potter").await;
    fill(c, "email", "nik@nikpot.com").await;
    complete_enrollment(c, Clock::system().now()).await;
    let hint = wait_text(c, "main", "No customers yet").await;
    assert!(hint.contains("create one"), "{hint}");
    click(c, "main a[href='/tenants']").await;
    fill(c, "name", "Acme Corp").await;
    click(c, "#new-tenant button[type=submit]").await;
    wait_text(c, "main h1", "Acme Corp").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/t/acme-corp/settings"
    );
    // The tenant's start page, with and without the slash.
    let base = link.split("/setup/").next().unwrap().to_string();
    for path in ["/t/acme-corp", "/t/acme-corp/"] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        wait_text(c, "main h1", "Acme Corp").await;
    }
    // The link was for one setup: used, it answers that it cannot be used again.
    c.goto(&link).await.unwrap();
    wait_text(c, "main", "cannot be used").await;

    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    b.client.clone().close().await.unwrap();
}

/// An approver's day, each action more than five minutes after the last code: approve with a
/// changed duration, deny with a reason, revoke, and a technician login — each through the
/// step-up prompt — and the real agent's throw-away root shows the result. A grant the
/// workstation cannot carry out shows as failed with its reason.
#[actix_web::test]
async fn an_approvers_day_through_the_step_up_prompt() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    s.follow_real_time();
    let c = &b.client;
    let secret = signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let mut ws = crate::agent::enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    add_local_user(&root, "bob", 1001);
    add_local_user(&root, "carol", 1002);
    ws.start();

    // Approve bob with 45 minutes instead of the 30 he asked for.
    request_admin(&ws, "bob", "30", "install the label printer");
    let bob = request_id_of(&s, "bob").await;
    c.goto(&s.url("/t/acme/requests")).await.unwrap();
    wait_text(c, "tr.request", "install the label printer").await;
    s.clock.advance_secs(6 * 60);
    let minutes = wait_for(c, &format!("#minutes-{bob}")).await;
    minutes.clear().await.unwrap();
    minutes.send_keys("45").await.unwrap();
    click(c, &format!("tr[data-request='{bob}'] form.approve button")).await;
    // The queue asks for the code in a dialog over the page; the typed 45 stays.
    let prompt = wait_text(c, "#step-up-dialog[open]", "Confirm it is you").await;
    assert!(prompt.contains("approve this request"), "{prompt}");
    step_up(c, &s, &secret).await;
    wait_text(c, "#flash .notice", "Approved: 45 minutes for bob").await;
    wait_text(c, "table.sessions", "bob").await;
    assert_eq!(request_row(&s, "bob").await, ("approved".into(), Some(45)));
    assert!(
        eventually(20, || sudoers(&root).contains(&"bob".to_string())).await,
        "the workstation granted bob"
    );
    wait_text(c, "tr.session td.countdown", "min").await;

    // Deny carol with a reason.
    request_admin(&ws, "carol", "60", "try a new browser");
    let carol = request_id_of(&s, "carol").await;
    wait_text(c, "tr.request", "try a new browser").await;
    s.clock.advance_secs(6 * 60);
    fill(c, "reason", "use the approved browser").await;
    click(c, &format!("tr[data-request='{carol}'] form.deny button")).await;
    step_up(c, &s, &secret).await;
    wait_text(c, "table.history", "use the approved browser").await;
    assert_eq!(request_row(&s, "carol").await.0, "denied");
    assert!(!sudoers(&root).contains(&"carol".to_string()));

    // Revoke bob's session: confirm, then the dialog asks for the code over the page.
    s.clock.advance_secs(6 * 60);
    click(c, "tr.session form button.danger").await;
    accept_confirm(c).await;
    wait_for(c, "#step-up-dialog[open] input[name=code]").await;
    step_up(c, &s, &secret).await;
    wait_text(c, "table.history", "revoked").await;
    assert_eq!(request_row(&s, "bob").await.0, "revoked");
    assert!(
        eventually(20, || !sudoers(&root).contains(&"bob".to_string())).await,
        "the workstation took bob's rights back"
    );

    // A technician login on the workstation's page.
    s.clock.advance_secs(6 * 60);
    c.goto(&s.url(&format!("/t/acme/devices/{}", ws.device)))
        .await
        .unwrap();
    click(c, "form.login-start button").await;
    wait_text(c, "main", "log in to this workstation").await;
    step_up(c, &s, &secret).await;
    let password = wait_for(c, "#login-password").await.text().await.unwrap();
    let account = wait_for(c, "#login-account").await.text().await.unwrap();
    assert_eq!(account, "msp-nik");
    assert!(
        eventually(20, || crate::logins::opens(&root, "msp-nik", &password)).await,
        "the password shown once opens msp-nik on the workstation"
    );

    // Dave asks, then his account is removed from the workstation before anyone decides:
    // approved, the workstation cannot carry the grant out, and the portal says so instead
    // of showing a session with a countdown.
    add_local_user(&root, "dave", 1003);
    request_admin(&ws, "dave", "30", "old script");
    remove_local_user(&root, "dave");
    let dave = request_id_of(&s, "dave").await;
    c.goto(&s.url("/t/acme/requests")).await.unwrap();
    wait_text(c, "tr.request", "old script").await;
    click(c, &format!("tr[data-request='{dave}'] form.approve button")).await;
    let failed = wait_text(c, "table.failed", "dave").await;
    assert!(
        failed.contains("there is no local account dave on this workstation"),
        "{failed}"
    );
    let sessions = wait_for(c, "table.sessions").await.text().await.unwrap();
    assert!(!sessions.contains("dave"), "{sessions}");
    assert_eq!(request_row(&s, "dave").await.0, "failed");

    // The agent's own log says when it reached the appliance.
    let mut agent = ws.agent.take().unwrap();
    let _ = agent.kill();
    let mut log = String::new();
    use std::io::Read;
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = agent.wait();
    assert!(
        log.contains("hourglass agent: connected to https://"),
        "{log}"
    );
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// `document` is no wider than the window (nothing scrolls sideways).
async fn fits(c: &Client) -> bool {
    c.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1",
        vec![],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

/// A phone is enough to approve: at 400 px the queue, the request and Approve fit the screen,
/// the navigation folds behind a menu button, and the step-up dialog fits too. At 800 px no
/// page is wider than the window.
#[actix_web::test]
async fn a_phone_is_enough_to_approve() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    let secret = signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let d = crate::requests::Device::enroll(&s, &token).await;
    d.ask(
        "erin",
        30,
        "the scanner driver needs an administrator to install, and the vendor's updater too",
    )
    .await;
    c.goto(&s.url("/t/acme/requests")).await.unwrap();
    wait_text(c, "tr.request", "scanner driver").await;
    assert!(fits(c).await, "the queue fits 400 px");
    let nav = c.find(Locator::Css("nav.side")).await.unwrap();
    assert!(!nav.is_displayed().await.unwrap(), "navigation folded away");
    click(c, "button.menu-toggle").await;
    assert!(
        nav.is_displayed().await.unwrap(),
        "the menu button opens it"
    );
    click(c, "button.menu-toggle").await;
    let approve = wait_for(c, "tr.request form.approve button").await;
    assert!(approve.is_displayed().await.unwrap());
    let inside: bool = c
        .execute(
            "var r = arguments[0].getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth;",
            vec![serde_json::to_value(&approve).unwrap()],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(inside, "Approve is on the screen");
    s.clock.advance_secs(6 * 60);
    approve.click().await.unwrap();
    wait_text(c, "#step-up-dialog[open]", "Confirm it is you").await;
    assert!(fits(c).await, "the step-up dialog fits 400 px");
    step_up(c, &s, &secret).await;
    wait_text(c, "table.sessions", "erin").await;

    c.set_window_size(800, 900).await.unwrap();
    for path in [
        "/",
        "/t/acme/requests",
        "/t/acme/devices",
        "/t/acme/users",
        "/t/acme/policies",
        "/t/acme/settings",
        "/t/acme/audit",
        "/requests",
        "/tenants",
        "/account",
    ] {
        c.goto(&s.url(path)).await.unwrap();
        wait_for(c, "main h1").await;
        assert!(fits(c).await, "{path} is no wider than 800 px");
    }
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// A create form is sent once however fast it is clicked, empties itself after success, and a
/// one-time secret stays on screen when the next one is made.
#[actix_web::test]
async fn forms_send_once_and_keep_their_secrets() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let c = &b.client;
    signed_in_admin(c, &s).await;
    c.goto(&s.url("/account")).await.unwrap();
    fill(c, "name", "backup script").await;
    c.execute(
        "var b = document.querySelector('#new-token button[type=submit]'); b.click(); b.click(); return true;",
        vec![],
    )
    .await
    .unwrap();
    let first = wait_text(c, ".new-token", "backup script").await;
    let count = |s: &TestServer| {
        let ctx = s.ctx().clone();
        async move {
            let p = crate::people::admin_principal_of(&ctx).await;
            service::tokens::list(&ctx, &p).await.unwrap().len()
        }
    };
    // Let a second request, if one had gone out, arrive before counting.
    wait_text(c, "#tokens-table", "backup script").await;
    assert_eq!(count(&s).await, 1, "a double click creates one token");
    let name = wait_for(c, "#new-token input[name=name]").await;
    assert_eq!(name.prop("value").await.unwrap().unwrap_or_default(), "");
    fill(c, "name", "rmm").await;
    click(c, "#new-token button[type=submit]").await;
    wait_text(c, ".new-token", "rmm").await;
    let cards = c.find_all(Locator::Css(".new-token")).await.unwrap();
    assert_eq!(cards.len(), 2, "the first secret is still shown");
    assert!(first.contains("hg"), "{first}");
    assert_eq!(count(&s).await, 2);
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// Where the agent can tell, a request for an account the workstation does not have is
/// refused when it is made, not approved into a grant that must fail.
#[actix_web::test]
async fn a_request_for_an_account_the_workstation_lacks_is_refused_at_once() {
    let mut s = TestServer::start().await;
    crate::people::setup(&s).await;
    let token = acme(&s).await;
    let ws = crate::agent::enroll(&s, &token);
    let out = hourglass()
        .args([
            "agent",
            "request-admin",
            "--user",
            "nobody-here",
            "--minutes",
            "30",
        ])
        .args(["--reason", "test"])
        .args(ws.args())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("there is no local account nobody-here on this workstation"),
        "{}",
        text(&out)
    );
    let p = crate::people::admin_principal(&s).await;
    let t = service::tenants::resolve(s.ctx(), &p, "acme", &Default::default())
        .await
        .unwrap();
    let none = service::requests::list(s.ctx(), &p, &t, Default::default())
        .await
        .unwrap();
    assert!(none.is_empty(), "nothing was asked: {none:?}");
    s.stop().await;
}

/// A co-managed admin's settings page in the browser: co-management and seats are shown as
/// the MSP's, with no field to change them, and a change forged from that very page (its own
/// CSRF token) is refused and leaves them as they were.
#[actix_web::test]
async fn a_co_managed_admins_settings_cannot_change_seats() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let c = &b.client;
    crate::people::setup(&s).await;
    acme(&s).await;
    let mut p = crate::people::admin_principal(&s).await;
    p.mfa_at = Some(s.clock.now());
    let t = service::tenants::resolve(s.ctx(), &p, "acme", &Default::default())
        .await
        .unwrap();
    let settings = hourglass::model::tenants::Settings {
        co_management: true,
        seats: 2,
        ..t.settings.clone()
    };
    let u = service::tenants::TenantUpdate {
        name: None,
        slug: None,
        active: None,
        settings,
        acknowledge_shared: false,
    };
    let t = service::tenants::update(s.ctx(), &p, &t, u, &Default::default())
        .await
        .unwrap();
    let cora = service::users::create(
        s.ctx(),
        &p,
        &t,
        service::users::NewUser {
            first_name: "Cora".into(),
            last_name: "Admin".into(),
            email: "cora@acme.test".into(),
            username: String::new(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let action = service::users::Action::MakeAdmin;
    service::users::act(s.ctx(), &p, &t, cora.user.id, action, &Default::default())
        .await
        .unwrap();
    c.goto(&s.url(&format!("/enroll/{}", cora.enrollment_token)))
        .await
        .unwrap();
    complete_enrollment(c, s.clock.now()).await;
    c.goto(&s.url("/t/acme/settings")).await.unwrap();
    let shown = wait_text(c, "main", "Your MSP sets these").await;
    assert!(shown.contains("2 co-managed seats"), "{shown}");
    let fields = c
        .find_all(Locator::Css("[name=seats], [name=co_management]"))
        .await
        .unwrap();
    assert!(fields.is_empty(), "no field for what the MSP owns");
    // Forged from the page itself: its own token, its own origin.
    let status = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             var token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
             var body = new URLSearchParams({seats: '50', co_management: 'true', login_mode: 'named',
               jit_enabled: 'true', jit_max_minutes: '240', jit_pending_timeout_minutes: '1440',
               offline_login_minutes: '60', time_zone: 'UTC'});
             fetch('/t/acme/settings', {method: 'POST', body: body,
               headers: {'X-CSRF-Token': token, 'HX-Request': 'true'}})
               .then(function (r) { done(r.status); }).catch(function (e) { done(String(e)); });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        serde_json::json!(403),
        "the forged change is refused"
    );
    let now = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.settings.seats, 2);
    assert!(now.settings.co_management);
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// The offline code page shows the next code by itself when the one on screen runs out.
#[actix_web::test]
async fn the_offline_code_page_moves_on_to_the_next_code() {
    let Some(b) = browser().await else { return };
    let mut s = TestServer::start().await;
    let c = &b.client;
    signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let mut p = crate::people::admin_principal(&s).await;
    p.mfa_at = Some(s.clock.now());
    let t = service::tenants::resolve(s.ctx(), &p, "acme", &Default::default())
        .await
        .unwrap();
    let settings = hourglass::model::tenants::Settings {
        login_mode: hourglass::model::tenants::LoginMode::Shared,
        ..t.settings.clone()
    };
    let u = service::tenants::TenantUpdate {
        name: None,
        slug: None,
        active: None,
        settings,
        acknowledge_shared: true,
    };
    service::tenants::update(s.ctx(), &p, &t, u, &Default::default())
        .await
        .unwrap();
    let d = crate::requests::Device::enroll(&s, &token).await;
    // Two seconds before the code's time step ends, so the page counts down only those.
    let into = (s.clock.now().millis() / 1000).rem_euclid(30);
    s.clock.advance_secs((28 - into).rem_euclid(30));
    c.goto(&s.url(&format!("/t/acme/devices/{}/offline-code", d.id)))
        .await
        .unwrap();
    let first = wait_for(c, "#offline-code").await.text().await.unwrap();
    // The step is over on the appliance's clock; the page, counting down the seconds it was
    // given, fetches the next code.
    s.clock.advance_secs(3);
    let mut next = first.clone();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(e) = c.find(Locator::Css("#offline-code")).await
            && let Ok(t) = e.text().await
        {
            next = t;
        }
        if next != first {
            break;
        }
    }
    assert_ne!(next, first, "the page moved on to the next code");
    assert_eq!(next.len(), 6, "{next}");
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// A script token from *My account*, on a phone, after the step-up window: the form asks for
/// a fresh code in place, the token is shown once with what it may do, and only the one made
/// with the sensitive scope may change a tenant's settings through the API.
#[actix_web::test]
async fn a_token_for_a_script_is_made_on_my_account_with_its_scope() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    let secret = signed_in_admin(c, &s).await;
    acme(&s).await;

    let mut made = Vec::new();
    for (name, sensitive) in [("rmm-read", false), ("rmm-approve", true)] {
        c.goto(&s.url("/account")).await.unwrap();
        wait_for(c, "#new-token").await;
        assert!(fits(c).await, "My account fits 400 px");
        // Past the five-minute window: creating a token needs a fresh code.
        s.clock.advance_secs(6 * 60);
        fill(c, "name", name).await;
        c.execute(
            "document.querySelector('#new-token select[name=expires_in_days]').value = '7'",
            vec![],
        )
        .await
        .unwrap();
        if sensitive {
            click(c, "#new-token input[name=sensitive]").await;
        }
        click(c, "#new-token button[type=submit]").await;
        step_up(c, &s, &secret).await;
        let shown = wait_for(c, ".new-token code.token")
            .await
            .text()
            .await
            .unwrap();
        assert!(shown.starts_with("hgt_"), "{shown}");
        assert!(fits(c).await, "the shown token fits 400 px");
        let row = wait_text(c, "#tokens-table", name).await;
        let may = if sensitive {
            "Everything its owner may do"
        } else {
            "Everything except sensitive actions"
        };
        assert!(row.contains(may), "{row}");
        made.push(shown);
    }
    let patch = |token: String| {
        s.client()
            .patch(s.url("/api/v1/tenants/acme"))
            .bearer_auth(token)
            .json(&serde_json::json!({"jit_max_minutes": 120}))
            .send()
    };
    let plain = patch(made[0].clone()).await.unwrap();
    assert_eq!(plain.status(), 403, "a token without the sensitive scope");
    let scoped = patch(made[1].clone()).await.unwrap();
    assert_eq!(scoped.status(), 200, "{}", scoped.text().await.unwrap());
}

/// A link to something that is not there (a workstation retired since, a mistyped id) opens
/// the missing page at phone width with its way back to the start page, and the refusal is
/// audited once by the one authorization path (web/refusals.rs).
#[actix_web::test]
async fn a_missing_workstation_answers_inside_the_portal_and_is_audited_once() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    signed_in_admin(c, &s).await;
    acme(&s).await;
    let fails = || async {
        s.ctx()
            .db
            .read(|r| hourglass::store::audit::count_event(r, "authz_fail"))
            .await
            .unwrap()
    };
    let before = fails().await;
    let missing = hourglass::ids::DeviceId::new();
    c.goto(&s.url(&format!("/t/acme/devices/{missing}")))
        .await
        .unwrap();
    let text = wait_text(c, "main", "does not exist").await;
    assert!(text.contains("does not exist"), "{text}");
    assert!(fits(c).await, "the missing page fits 400 px");
    assert_eq!(fails().await, before + 1, "audited once");
    // A malformed id is just as missing, and just as audited.
    c.goto(&s.url("/t/acme/devices/not-an-id")).await.unwrap();
    wait_text(c, "main", "does not exist").await;
    assert_eq!(fails().await, before + 2);
    // The way back is on the page: it leads to the signed-in start page, no refusal.
    click(c, "main.error-page a[href='/']").await;
    wait_for(c, "nav").await;
    assert!(!c.source().await.unwrap().contains("does not exist"));
    assert_eq!(
        fails().await,
        before + 2,
        "a page that is there is no refusal"
    );
}

/// A role is created on the Roles page in Chromium: the list gains it and a notice says so,
/// in the same page (no reload), and the emptied form is ready for the next one.
#[actix_web::test]
async fn a_new_role_joins_the_list_without_a_reload() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    signed_in_admin(c, &s).await;
    acme(&s).await;
    c.goto(&s.url("/t/acme/roles")).await.unwrap();
    wait_for(c, "#roles-table").await;
    c.execute("window.samePage = 'yes'; return true;", vec![])
        .await
        .unwrap();
    fill(c, "name", "Helpdesk").await;
    click(c, "#new-role input[value='users.view']").await;
    click(c, "#new-role button[type=submit]").await;
    wait_text(
        c,
        "#flash .notice",
        "Role \u{201c}Helpdesk\u{201d} created.",
    )
    .await;
    wait_text(c, "#roles-table", "Helpdesk").await;
    let same = c
        .execute("return window.samePage || 'reloaded';", vec![])
        .await
        .unwrap();
    assert_eq!(same, "yes", "creating a role reloaded the page");
    let name = wait_for(c, "#new-role input[name=name]").await;
    assert_eq!(name.prop("value").await.unwrap().unwrap_or_default(), "");
}

/// Offboarding as an admin does it, on a phone, after the step-up window: Disable on the
/// technician's page, confirm, the code dialog, and the page says what ended with her —
/// her portal session, her API token and the login she held on a workstation.
#[actix_web::test]
async fn disabling_a_technician_from_her_page_says_what_ended() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    let secret = signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let ws = crate::requests::Device::enroll(&s, &token).await;
    let tenant = |slug: &'static str| {
        let s = &s;
        async move {
            s.ctx()
                .db
                .read(move |r| hourglass::store::tenants::by_slug(r, slug))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (msp, acme) = (tenant("nikpot-it").await, tenant("acme").await);
    let tess = crate::fixture::person(&s, &msp, "tess@nikpot.com", &["technician"]).await;
    let p = crate::fixture::fresh_admin(&s).await;
    let assign = service::users::Action::AssignTenants {
        all: false,
        tenants: vec![acme.id],
    };
    service::users::act(s.ctx(), &p, &msp, tess.id, assign, &Default::default())
        .await
        .unwrap();
    let start = format!("/api/v1/tenants/acme/devices/{}/logins", ws.id);
    let (st, l) = crate::logins::api(&s, &tess.token, "POST", &start, serde_json::json!({})).await;
    assert_eq!(st, 201, "{l}");

    s.clock.advance_secs(6 * 60);
    c.goto(&s.url(&format!("/t/nikpot-it/users/{}", tess.id)))
        .await
        .unwrap();
    click(c, "form[action$='/disable'] button").await;
    accept_confirm(c).await;
    step_up(c, &s, &secret).await;
    let said = wait_text(c, "#user-result", "Ended").await;
    // The workstation (enrolled, never polling since) is offline: its orders wait for it.
    assert_eq!(
        said,
        "Done. Ended 1 portal session, 1 API token and 1 technician login. \
         1 workstation is offline: it acts on this when it next checks in."
    );
    assert!(fits(c).await, "the user page fits 400 px");
    let (_, logins) = crate::logins::api(
        &s,
        &crate::requests::api_token(&s).await,
        "GET",
        "/api/v1/tenants/acme/logins",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(logins["logins"][0]["state"], "revoked", "{logins}");
}

/// At phone width, after the step-up window each time: the admin erases a technician from her
/// page (confirmed, then the code), and the people list no longer names her; then orders the
/// standing administrators out, keeping a break-glass account, and the workstation's list of
/// administrators loses alice. The devices page says who stood before and fits 400 px.
#[actix_web::test]
async fn erasure_and_standing_admins_at_phone_width() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    let secret = signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let mut ws = crate::agent::enroll(&s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let msp = s
        .ctx()
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    let tess = crate::fixture::person(&s, &msp, "tess@nikpot.com", &["technician"]).await;

    s.clock.advance_secs(6 * 60);
    c.goto(&s.url(&format!("/t/nikpot-it/users/{}", tess.id)))
        .await
        .unwrap();
    click(c, "form[action$='/erase'] button").await;
    accept_confirm(c).await;
    step_up(c, &s, &secret).await;
    wait_text(c, "#user-result", "Done").await;
    c.goto(&s.url("/t/nikpot-it/users")).await.unwrap();
    let people = wait_for(c, "main").await.text().await.unwrap();
    assert!(
        !people.contains("tess@nikpot.com") && people.contains("Erased"),
        "{people}"
    );
    assert!(fits(c).await, "the people list fits 400 px");

    // The workstation's standing administrator, shown before anything is removed.
    c.goto(&s.url("/t/acme/devices")).await.unwrap();
    for _ in 0..100 {
        service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
        c.refresh().await.unwrap();
        let t = wait_for(c, "#standing-admins-summary")
            .await
            .text()
            .await
            .unwrap();
        if t.starts_with("1 standing administrator") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(c, "td.standing-admins", "alice").await;
    assert!(fits(c).await, "the devices page fits 400 px");

    s.clock.advance_secs(6 * 60);
    c.goto(&s.url("/t/acme/settings")).await.unwrap();
    click(c, "input[name=remove_standing_admins]").await;
    // Ticking it asks first: it takes rights away on every workstation.
    let mut asked = String::new();
    for _ in 0..60 {
        if let Ok(t) = c.get_alert_text().await {
            asked = t;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        asked.contains("except the accounts listed below"),
        "{asked}"
    );
    accept_confirm(c).await;
    fill(c, "standing_admin_exceptions", "breakglass").await;
    click(c, "form[action$='/settings'] button[type=submit]").await;
    step_up(c, &s, &secret).await;
    wait_text(c, "#settings-result", "Settings saved.").await;
    assert!(fits(c).await, "the settings page fits 400 px");
    assert!(
        eventually(20, || !sudoers(&root).contains(&"alice".to_string())).await,
        "the workstation took alice out"
    );
    ws.kill();
}

/// At phone width, after the step-up window: a workstation's agent binary changes; its page
/// shows the SHA-256 the agent reports and the tamper alert; "Dismiss alert" asks to confirm,
/// then for a fresh code, and the alert gives way to the dismissal in place. The log keeps it.
#[actix_web::test]
async fn a_tamper_alert_is_read_and_dismissed_at_phone_width() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    c.set_window_size(400, 860).await.unwrap();
    let secret = signed_in_admin(c, &s).await;
    let token = acme(&s).await;
    let d = crate::requests::Device::enroll_as(&s, &token, "ACME-LT-014").await;
    let (first, other) = ("ab".repeat(32), "cd".repeat(32));
    for hash in [&first, &other] {
        let r =
            d.c.post(format!("{}/agent/v1/poll", d.base))
                .header("x-device-id", &d.id)
                .bearer_auth(&d.secret)
                .json(
                    &serde_json::json!({"agent_version": hourglass::proto::AGENT_VERSION,
                "agent_hash": hash, "admin_members": [], "last_seq": 0, "wait_secs": 0}),
                )
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200);
        service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    }

    s.clock.advance_secs(6 * 60);
    c.goto(&s.url(&format!("/t/acme/devices/{}", d.id)))
        .await
        .unwrap();
    let shown = wait_for(c, "code.hash").await.text().await.unwrap();
    assert_eq!(shown.trim(), other, "the hash the agent reports now");
    wait_text(c, "#device-alert", "agent binary or version changed").await;
    assert!(fits(c).await, "the device page, hash and alert fit 400 px");

    click(c, "#device-alert button[type=submit]").await;
    accept_confirm(c).await;
    step_up(c, &s, &secret).await;
    wait_text(c, "#device-alert", "Alert dismissed").await;
    assert!(fits(c).await, "the dismissal fits 400 px");
    c.refresh().await.unwrap();
    let page = wait_for(c, "main").await.text().await.unwrap();
    assert!(!page.contains("Tamper alert"), "{page}");
    assert_eq!(
        audit_details(&s, "device_alert_dismissed").await,
        vec![serde_json::json!({"alert": "agent_changed"})]
    );
}
