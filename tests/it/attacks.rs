//! What an attack on the running appliance found, each kept closed by a test: promoting
//! oneself, approving one's own request by unlinking, credentials that outlive a change,
//! session rows for anonymous visitors, links from the Host header, open redirects.

use hourglass::service;
use hourglass::service::users::Action;
use serde_json::{Value, json};

use crate::people::{Http, enroll, setup};
use crate::support::*;

async fn count(s: &TestServer, event: &str) -> usize {
    let e = event.to_string();
    s.ctx()
        .db
        .read(move |r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some(e),
                    limit: 10_000,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .len()
}

use crate::fixture::fresh_admin;

/// Tenant acme (co-management on, 3 seats).
async fn acme(s: &TestServer) -> hourglass::model::tenants::Tenant {
    let p = fresh_admin(s).await;
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
    service::tenants::update(
        s.ctx(),
        &p,
        &t,
        service::tenants::TenantUpdate {
            name: None,
            slug: None,
            active: None,
            settings: hourglass::model::tenants::Settings {
                co_management: true,
                seats: 3,
                ..t.settings.clone()
            },
            acknowledge_shared: false,
        },
        &Default::default(),
    )
    .await
    .unwrap()
}

/// A person of acme with `roles`, signed in (portal) and with an API token.
async fn person(
    s: &TestServer,
    t: &hourglass::model::tenants::Tenant,
    email: &str,
    roles: &[&str],
) -> (hourglass::ids::UserId, Http, String) {
    let p = crate::fixture::person(s, t, email, roles).await;
    (p.id, p.http, p.token)
}

async fn api(s: &TestServer, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    crate::logins::api(s, token, method, path, body).await
}

/// AZ (DESIGN §1): a custom role with users.manage cannot make itself (or anyone) admin,
/// give itself a role, or reset, unlock or pause the MFA of someone more privileged; each
/// refusal is a 403 and an audited authz_fail, through the portal and the API alike.
#[actix_web::test]
async fn users_manage_cannot_promote_anyone_or_touch_those_above() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let t = acme(&s).await;
    let p = fresh_admin(&s).await;
    let role = service::roles::create(
        s.ctx(),
        &p,
        &t,
        "Helpdesk",
        &["users.manage".into(), "users.view".into()],
        &Default::default(),
    )
    .await
    .unwrap();
    let (me, mut portal, token) = person(&s, &t, "helpdesk@acme.test", &[&role.id]).await;
    let (boss, _, _) = person(&s, &t, "boss@acme.test", &["co_managed"]).await;
    let (peer, _, _) = person(&s, &t, "peer@acme.test", &[]).await;

    let before = count(&s, "authz_fail").await;
    let base = "/api/v1/tenants/acme/users";
    for path in [
        format!("{base}/{me}/make-admin"),
        format!("{base}/{peer}/make-admin"),
        format!("{base}/{boss}/reset-enrollment"),
        format!("{base}/{boss}/unlock"),
        format!("{base}/{boss}/pause-mfa-next"),
        format!("{base}/{boss}/disable"),
    ] {
        let (st, v) = api(&s, &token, "POST", &path, json!({"confirm": "yes"})).await;
        assert_eq!(st, 403, "{path}: {v}");
    }
    for (path, form) in [
        (format!("/t/acme/users/{me}/make-admin"), vec![]),
        (
            format!("/t/acme/users/{me}/roles"),
            vec![("role", "auditor"), ("op", "add")],
        ),
        (
            format!("/t/acme/users/{boss}/reset-enrollment"),
            vec![("confirm", "yes")],
        ),
        (format!("/t/acme/users/{boss}/pause-mfa-24h"), vec![]),
    ] {
        let r = portal.post(&path, &form).await;
        assert_eq!(r.status(), 403, "{path}: {}", r.text().await.unwrap());
    }
    assert_eq!(
        count(&s, "authz_fail").await,
        before + 10,
        "every refusal audited"
    );
    let roles = |id| {
        let ctx = s.ctx().clone();
        async move {
            ctx.db
                .read(move |r| hourglass::store::users::roles_of(r, id))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        roles(me).await,
        vec![role.id.clone()],
        "still only Helpdesk"
    );
    assert!(roles(peer).await.is_empty());
    // What the role is for still works on people no more privileged: pausing a peer's MFA.
    let r = portal
        .post(&format!("/t/acme/users/{peer}/pause-mfa-next"), &[])
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A role may hold only permissions its author holds.
    let wider = service::roles::create(
        s.ctx(),
        &crate::people::admin_principal(&s).await,
        &t,
        "Everything",
        &["settings.manage".into()],
        &Default::default(),
    )
    .await;
    assert!(wider.is_ok(), "the MSP admin holds everything: {wider:?}");
    s.stop().await;
}

/// JIT-01: a co-managed admin whose endpoint user is linked to them cannot unlink it, and an
/// approval refuses anyone the account was linked to while the request was open.
#[actix_web::test]
async fn unlinking_oneself_does_not_allow_approving_ones_own_request() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let t = acme(&s).await;
    let (cora, mut portal, token) = person(&s, &t, "cora@acme.test", &["co_managed"]).await;
    let p = fresh_admin(&s).await;
    let (_, enroll_token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 1, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let d = crate::requests::Device::enroll(&s, &enroll_token).await;
    let (_, r) = d.ask("cora-laptop", 30, "my own request").await;
    let rid = r["id"].as_str().unwrap().to_string();
    let eu = service::requests::endpoint_users(s.ctx(), &p, &t)
        .await
        .unwrap()
        .remove(0);
    // The MSP admin links the account to Cora.
    service::requests::link_endpoint_user(
        s.ctx(),
        &p,
        &t,
        &eu.id,
        Some(&cora.to_string()),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = portal
        .post(
            &format!("/t/acme/endpoint-users/{}/link", eu.id),
            &[("user_id", "")],
        )
        .await;
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    // Someone else unlinks it; Cora still cannot approve the request that was open then.
    service::requests::link_endpoint_user(s.ctx(), &p, &t, &eu.id, None, &Default::default())
        .await
        .unwrap();
    let (st, v) = api(
        &s,
        &token,
        "POST",
        &format!("/api/v1/tenants/acme/requests/{rid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("own"), "{v}");
    s.stop().await;
}

/// SESS-04: a password change ends the person's other sessions; reset-enrollment, disable
/// and erase revoke their API tokens for good (re-enrolling does not revive one).
#[actix_web::test]
async fn credentials_do_not_outlive_a_change() {
    let mut s = TestServer::start().await;
    let (mut a, _) = setup(&s).await;
    let t = acme(&s).await;
    // Two sessions of the same person; changing the password in one ends the other.
    let (id, mut first, token) = person(&s, &t, "dana@acme.test", &[]).await;
    let mut second = crate::people::relogin_as(&s, "dana@acme.test").await;
    assert_eq!(second.get("/account").await.status(), 200);
    let r = first
        .post(
            "/account/password",
            &[
                ("current_password", crate::people::PASSWORD),
                ("new_password", "a-brand-new-passphrase-77"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(first.get("/account").await.status(), 200, "this one stays");
    assert_eq!(
        second.get("/account").await.status(),
        303,
        "the other one ended"
    );

    // An API token dies with a reset of the enrollment and stays dead after re-enrolling.
    let (st, _) = api(&s, &token, "GET", "/api/v1/tenants/acme/users", Value::Null).await;
    assert_eq!(st, 403, "the token works (no users.view for this person)");
    let p = fresh_admin(&s).await;
    let link = service::users::act(
        s.ctx(),
        &p,
        &t,
        id,
        Action::ResetEnrollment,
        &Default::default(),
    )
    .await
    .unwrap()
    .unwrap();
    enroll(&s, &link).await;
    let (st, _) = api(&s, &token, "GET", "/api/v1/tenants/acme/users", Value::Null).await;
    assert_eq!(st, 401, "revoked by the reset, not revived by re-enrolling");

    for action in [Action::Disable, Action::Erase] {
        let email = format!(
            "{}@acme.test",
            if action == Action::Disable {
                "ed"
            } else {
                "eli"
            }
        );
        let (uid, _, tok) = person(&s, &t, &email, &[]).await;
        service::users::act(s.ctx(), &p, &t, uid, action.clone(), &Default::default())
            .await
            .unwrap();
        if action == Action::Disable {
            service::users::act(s.ctx(), &p, &t, uid, Action::Enable, &Default::default())
                .await
                .unwrap();
        }
        let (st, _) = api(&s, &tok, "GET", "/api/v1/tenants/acme/users", Value::Null).await;
        assert_eq!(st, 401, "{action:?} revoked the token for good");
    }
    let _ = a.get("/").await;
    s.stop().await;
}

/// Anonymous visitors of the sign-in page cost no database row.
#[actix_web::test]
async fn the_sign_in_page_writes_no_session_rows() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let rows = |s: &TestServer| {
        let ctx = s.ctx().clone();
        async move {
            ctx.db
                .read(hourglass::store::sessions::count)
                .await
                .unwrap()
        }
    };
    let before = rows(&s).await;
    let c = s.client();
    for _ in 0..1000 {
        assert_eq!(c.get(s.url("/login")).send().await.unwrap().status(), 200);
    }
    assert_eq!(rows(&s).await, before, "1,000 anonymous GETs, 0 new rows");
    s.stop().await;
}

/// Links are never built from the Host header a client sends, and step-up returns only to
/// paths of this appliance.
#[actix_web::test]
async fn links_ignore_the_host_header_and_step_up_stays_home() {
    let mut s = TestServer::start().await;
    let (mut admin, secret) = setup(&s).await;
    acme(&s).await;
    let r = admin
        .c
        .post(format!("{}/t/acme/devices/tokens", admin.base))
        .header("cookie", admin.cookies())
        .header("x-csrf-token", admin.csrf().await)
        .header("origin", "https://evil.test")
        .header("host", "evil.test")
        .form(&[("hours", "1"), ("uses", "1")])
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(!body.contains("evil.test"), "{body}");
    assert!(body.contains(&format!("--server {}", s.base)), "{body}");

    s.clock.advance_secs(31);
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    let r = admin
        .post(
            "/step-up",
            &[("code", code.as_str()), ("next", "/\\evil.test/x")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/",
        "an outside target is not followed"
    );
    s.stop().await;
}

/// A zero-byte database beside an existing master.key is refused (a lost database, not a new
/// install) with what to do; starting fresh there needs storage.start_fresh.
#[test]
fn an_emptied_database_is_not_a_new_install() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let first = run(&["cert", "fingerprint", "--data-dir", d]);
    assert!(first.status.success(), "{}", text(&first));
    std::fs::write(data.join("hourglass.db"), b"").unwrap();
    for f in ["hourglass.db-wal", "hourglass.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let refused = run(&["cert", "fingerprint", "--data-dir", d]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("is empty but") && said.contains("hourglass restore"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(data.join("hourglass.db")).unwrap().len(),
        0,
        "untouched"
    );
    let fresh = hourglass()
        .args(["cert", "fingerprint", "--data-dir", d])
        .env("HOURGLASS__STORAGE__START_FRESH", "true")
        .output()
        .unwrap();
    assert!(fresh.status.success(), "{}", text(&fresh));
}

/// The database, its WAL and shared memory, and the checkpoint file are private (0600)
/// whatever the umask; unknown API paths and bad API queries answer JSON.
#[actix_web::test]
async fn files_are_private_and_the_api_answers_json() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start().await;
    setup(&s).await;
    s.clock.advance_secs(6 * 60);
    service::checkpoints::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
    for f in [
        "hourglass.db",
        "hourglass.db-wal",
        "hourglass.db-shm",
        "audit-checkpoint.txt",
    ] {
        let p = s.data_dir().join(f);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let token = crate::requests::api_token(&s).await;
    for path in [
        "/api/v1/no/such/thing",
        "/api/v1/tenants/nikpot-it/audit?limit=lots",
    ] {
        let r = s
            .client()
            .get(s.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let v: Value = r.json().await.unwrap();
        assert!(
            v["code"].is_string() && v["message"].is_string(),
            "{path}: {v}"
        );
    }
    s.stop().await;
}

/// AUTH-06: wrong passwords for a known and an unknown email meet the same answers, 429 after
/// five alike; the back-off is per email and source, so the owner signing in from elsewhere is
/// not kept out by it.
#[actix_web::test]
async fn back_off_does_not_tell_whether_an_account_exists() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let statuses = |email: &'static str, ip: &'static str| {
        let s = &s;
        async move {
            let mut h = Http::new(s);
            h.get("/login").await;
            let mut out = Vec::new();
            for _ in 0..8 {
                let r =
                    h.c.post(format!("{}/login", h.base))
                        .header("cookie", h.cookies())
                        .header("x-csrf-token", h.csrf().await)
                        .header("origin", h.base.clone())
                        .header("x-forwarded-for", ip)
                        .form(&[("email", email), ("password", "not-the-password-1")])
                        .send()
                        .await
                        .unwrap();
                out.push(r.status().as_u16());
            }
            out
        }
    };
    let known = statuses("nik@nikpot.com", "203.0.113.1").await;
    let unknown = statuses("nobody@nikpot.com", "203.0.113.1").await;
    assert_eq!(known, unknown, "the same answers for both");
    assert_eq!(&known[..5], &[401; 5]);
    assert!(known[5..].iter().all(|s| *s == 429), "{known:?}");
    s.stop().await;
}

/// TI-02: a principal guessing ids is refused with 429 once over the limit, and the burst is
/// audited once as malicious_direct_reference.
#[actix_web::test]
async fn guessing_ids_is_throttled_and_flagged_once() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    acme(&s).await;
    let mut statuses = Vec::new();
    for _ in 0..(service::tenants::PROBES_PER_MINUTE + 10) {
        let id = uuid::Uuid::now_v7();
        statuses.push(
            admin
                .get(&format!("/t/acme/devices/{id}"))
                .await
                .status()
                .as_u16(),
        );
    }
    let limit = service::tenants::PROBES_PER_MINUTE as usize;
    assert!(
        statuses[..limit - 1].iter().all(|s| *s == 404),
        "{statuses:?}"
    );
    assert!(statuses[limit..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        count(&s, "malicious_direct_reference").await,
        1,
        "once per burst"
    );
    s.clock.advance_secs(61);
    let id = uuid::Uuid::now_v7();
    assert_eq!(
        admin.get(&format!("/t/acme/devices/{id}")).await.status(),
        404,
        "a new minute starts clean"
    );
    s.stop().await;
}

/// Enrollment tokens enroll at most 100,000 workstations (a fleet roll-out, not unbounded).
#[actix_web::test]
async fn enrollment_tokens_have_a_use_cap() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    acme(&s).await;
    let token = crate::requests::api_token(&s).await;
    let path = "/api/v1/tenants/acme/enrollment-tokens";
    let (st, v) = api(
        &s,
        &token,
        "POST",
        path,
        json!({"hours": 1, "uses": 100_001}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("100000"), "{v}");
    let (st, v) = api(
        &s,
        &token,
        "POST",
        path,
        json!({"hours": 1, "uses": 100_000}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    s.stop().await;
}

/// DUR-04 / BR-03: a session revoked after a backup was taken reads revoked again after that
/// backup is restored, and the workstation is told to take the rights back once more.
#[actix_web::test]
async fn a_restore_does_not_revive_a_revoked_session() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let t = acme(&s).await;
    let p = fresh_admin(&s).await;
    let (_, enroll_token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 1, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let d = crate::requests::Device::enroll(&s, &enroll_token).await;
    let (_, r) = d.ask("bob", 30, "printer driver").await;
    let id = hourglass::ids::RequestId::parse(r["id"].as_str().unwrap()).unwrap();
    service::requests::approve(
        s.ctx(),
        &p,
        &t,
        id,
        None,
        hourglass::model::requests::Grant::Once,
        &Default::default(),
    )
    .await
    .unwrap();
    let data = s.data_dir();
    let out = s.dir.path().join("before-revoke.db");
    let b = run(&[
        "backup",
        "--out",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", text(&b));
    service::requests::revoke(s.ctx(), &p, &t, id, &Default::default())
        .await
        .unwrap();
    s.stop().await;
    let r = run(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r));
    s.restart().await;
    let p = fresh_admin(&s).await;
    let back = service::requests::list(s.ctx(), &p, &t, Default::default())
        .await
        .unwrap();
    assert_eq!(back[0].state.as_str(), "revoked", "not approved again");
    let why = count(&s, "request_revoked").await;
    assert!(why >= 1);
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    let revokes: i64 = c
        .query_row(
            "SELECT count(*) FROM commands WHERE device_id = ?1 AND kind = 'revoke_admin' AND state = 'queued' AND seq > 1000000",
            [d.id.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(revokes, 1, "the workstation is told again");
    s.stop().await;
}

/// WEB-06: a body trickled at a byte a second is cut off once the body timeout is over.
#[actix_web::test]
async fn a_trickled_body_is_dropped() {
    use std::io::{Read, Write};
    let mut s = TestServer::start_with(|c| c.server.body_timeout_secs = 2).await;
    let addr = s.base.trim_start_matches("https://").to_string();
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let started = std::time::Instant::now();
    let writer = std::thread::spawn(move || {
        let head = "POST /agent/v1/enroll HTTP/1.1\r\nHost: hourglass.test\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{";
        if stdin.write_all(head.as_bytes()).is_err() {
            return;
        }
        // A byte a second, for far longer than the timeout, unless the server hangs up.
        for _ in 0..60 {
            hourglass::clock::sleep_blocking(std::time::Duration::from_secs(1));
            if stdin.write_all(b" ").and_then(|_| stdin.flush()).is_err() {
                return;
            }
        }
    });
    // Read off the runtime's thread: the appliance under test runs on it.
    let mut stdout = child.stdout.take().unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(40),
        tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        }),
    )
    .await
    .expect("the connection was never closed")
    .unwrap();
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let _ = writer.join();
    assert!(
        out.starts_with("HTTP/1.1 4"),
        "an error answer, then the end: {out:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(30),
        "cut off after the 2 s timeout, not after the whole minute of trickling ({took:?})"
    );
    s.stop().await;
}

/// WEB-06: one address cannot hold every connection. Over its cap a new connection gets 429
/// and is closed; once one of its connections ends, the address is served again.
#[actix_web::test]
async fn one_client_cannot_hold_more_than_its_connections() {
    let mut s = TestServer::start_with(|c| c.server.max_connections_per_client = 3).await;
    // Each client keeps its own connection alive between requests.
    let held: Vec<reqwest::Client> = (0..3).map(|_| s.client()).collect();
    for c in &held {
        assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    }
    let extra = s.client();
    let r = extra.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 429, "a fourth connection from the same address");
    assert_eq!(r.headers()["retry-after"], "30");
    // The held connections still work.
    assert_eq!(
        held[0]
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = held[1]
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hourglass_connections_refused_total 1"),
        "{metrics}"
    );

    drop(held);
    let mut served = false;
    for _ in 0..50 {
        let r = s.client().get(s.url("/healthz")).send().await.unwrap();
        if r.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "closed connections free their slots");
    s.stop().await;
}

/// SESS-05 for tokens: a token does sensitive actions (here: reveal a technician password)
/// only when it was created with the sensitive scope, which needs an expiry and ends with it.
#[actix_web::test]
async fn api_tokens_do_sensitive_actions_only_with_the_sensitive_scope() {
    use hourglass::service::tokens::Scope;
    let mut s = TestServer::start().await;
    let (_, enrollment, mut admin) = crate::agent::tenant_and_admin(&s).await;
    let ws = crate::agent::enroll(&s, &enrollment);
    let logins = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let nik = "nik@nikpot.com";

    let plain = service::tokens::create_for_email(s.ctx(), nik, "plain", Scope::default()).unwrap();
    assert_eq!(
        api(&s, &plain, "GET", "/api/v1/tenants", Value::Null)
            .await
            .0,
        200
    );
    let (st, e) = api(&s, &plain, "POST", &logins, json!({"duration_minutes": 30})).await;
    assert_eq!(st, 403, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("sensitive scope"),
        "{e}"
    );
    assert!(e.get("password").is_none());

    let never = Scope {
        sensitive: true,
        expires_in_days: None,
    };
    let refused = service::tokens::create_for_email(s.ctx(), nik, "forever", never);
    assert!(
        matches!(refused, Err(hourglass::error::Error::Validation { ref field, .. }) if field == "expires_in_days"),
        "{refused:?}"
    );
    let too_long = Scope {
        sensitive: true,
        expires_in_days: Some(31),
    };
    assert!(service::tokens::create_for_email(s.ctx(), nik, "long", too_long).is_err());
    let out = run(&[
        "admin",
        "create-token",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "--email",
        nik,
        "--name",
        "cli",
        "--sensitive",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--expires-in-days"), "{}", text(&out));

    let sensitive =
        service::tokens::create_for_email(s.ctx(), nik, "ops", sensitive_scope()).unwrap();
    let (st, l) = api(
        &s,
        &sensitive,
        "POST",
        &logins,
        json!({"duration_minutes": 30}),
    )
    .await;
    assert_eq!(st, 201, "{l}");
    assert!(l["password"].as_str().is_some_and(|p| p.len() >= 20));

    // From the portal: the scope is chosen in My account, and a sensitive one needs an expiry.
    let csrf = admin.csrf().await;
    let r = admin
        .post(
            "/account/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "portal"),
                ("sensitive", "yes"),
                ("expires_in_days", "never"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(
        body.contains("needs an expiry") && !body.contains("hgt_"),
        "{body}"
    );
    let r = admin
        .post(
            "/account/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "portal"),
                ("sensitive", "yes"),
                ("expires_in_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("hgt_") && body.contains("Everything its owner may do"),
        "{body}"
    );

    // Past its expiry the sensitive token no longer signs anything in; the plain one still does.
    s.clock.advance_millis(31 * 86_400_000);
    assert_eq!(
        api(&s, &sensitive, "GET", "/api/v1/tenants", Value::Null)
            .await
            .0,
        401
    );
    assert_eq!(
        api(&s, &plain, "GET", "/api/v1/tenants", Value::Null)
            .await
            .0,
        200
    );
    s.stop().await;
}
