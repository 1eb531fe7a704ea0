//! Technician JIT logins end to end: the real agent creates, enables and disables accounts in
//! a throw-away root with the real shadow tools; passwords are checked against /etc/shadow.

use std::path::Path;

use hourglass::service;
use serde_json::{Value, json};

use crate::agent::{enroll, eventually, sudoers, tenant_and_admin, wait_until};
use crate::support::*;

/// The `/etc/shadow` hash of `account` in the root ("" when absent).
pub fn shadow(root: &Path, account: &str) -> String {
    std::fs::read_to_string(root.join("etc/shadow"))
        .unwrap()
        .lines()
        .find(|l| l.split(':').next() == Some(account))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .to_string()
}

/// Whether `password` opens the account (an unlocked SHA-512-crypt hash that verifies).
pub fn opens(root: &Path, account: &str, password: &str) -> bool {
    use sha_crypt::{PasswordHash, PasswordVerifier, ShaCrypt};
    let h = shadow(root, account);
    if h.starts_with('!') {
        return false;
    }
    PasswordHash::new(&h)
        .map(|p| {
            ShaCrypt::default()
                .verify_password(password.as_bytes(), &p)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The hash no longer matches `old` (locked or not).
pub fn rotated(root: &Path, account: &str, old: &str) -> bool {
    use sha_crypt::{PasswordHash, PasswordVerifier, ShaCrypt};
    let h = shadow(root, account);
    PasswordHash::new(h.trim_start_matches('!'))
        .map(|p| {
            ShaCrypt::default()
                .verify_password(old.as_bytes(), &p)
                .is_err()
        })
        .unwrap_or(false)
}

pub fn locked(root: &Path, account: &str) -> bool {
    shadow(root, account).starts_with('!')
}

pub async fn api(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = s
        .client()
        .request(m, format!("{}{path}", s.base))
        .bearer_auth(token);
    if !body.is_null() {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// The sentences of an event's entries, newest first, as the operator's export writes them
/// (names are joined in there: the chain itself holds ids only).
async fn audit_lines(s: &TestServer, event: &str) -> Vec<String> {
    let filter = hourglass::service::audit::ListFilter {
        event: Some(event.to_string()),
        ..Default::default()
    };
    let db = s.ctx().db.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        hourglass::service::audit::export_to(
            &db,
            None,
            &filter,
            hourglass::model::audit_export::Format::Ndjson,
            &mut out,
        )
        .unwrap();
        out
    })
    .await
    .unwrap();
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["summary"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    lines.reverse();
    lines
}

async fn login_state(s: &TestServer, token: &str, id: &str) -> String {
    let (_, v) = api(s, token, "GET", "/api/v1/tenants/acme/logins", Value::Null).await;
    v["logins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .map(|l| l["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Waits until the API says the session is in `state` (the agent acknowledges on its own time).
pub async fn wait_state(s: &TestServer, token: &str, id: &str, state: &str) {
    for _ in 0..300 {
        if login_state(s, token, id).await == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "login {id} never became {state}: {}",
        login_state(s, token, id).await
    );
}

/// Named mode with the real agent: `msp-nik` is created in the root, in `sudo`, its shadow
/// hash matches the password shown once; ending the session rotates the password and locks
/// the account. A second workstation gets a different password. The portal's one-time view
/// and the offline-code rules hold.
#[actix_web::test]
async fn named_login_end_to_end_with_the_real_agent() {
    let mut s = TestServer::start().await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let api_token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let mut ws = enroll(&s, &token);
    let mut ws2 = enroll(&s, &token);
    ws.start();
    ws2.start();
    let root = ws.root.path().to_path_buf();

    // Bad input first: clear refusals, nothing created.
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (st, e) = api(
        &s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": 2}),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    let (st, _) = api(
        &s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": "soon"}),
    )
    .await;
    assert_eq!(st, 422, "not a number: refused, not defaulted");
    let unknown = format!(
        "/api/v1/tenants/acme/devices/{}/logins",
        hourglass::ids::DeviceId::new()
    );
    assert_eq!(
        api(&s, &api_token, "POST", &unknown, json!({})).await.0,
        404
    );

    let (st, l) = api(
        &s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": 30, "ticket": "T-1"}),
    )
    .await;
    assert_eq!(st, 201, "{l}");
    assert_eq!(l["account"], "msp-nik");
    let password = l["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 20);
    let id = l["id"].as_str().unwrap().to_string();
    wait_state(&s, &api_token, &id, "active").await;
    assert!(sudoers(&root).contains(&"msp-nik".to_string()));
    assert!(
        opens(&root, "msp-nik", &password),
        "the shown password opens the account"
    );
    let (st, e) = api(&s, &api_token, "POST", &path, json!({})).await;
    assert_eq!(st, 409, "one open session per account and workstation: {e}");
    assert!(
        e["message"].as_str().unwrap().contains("nik@nikpot.com"),
        "{e}"
    );

    // Another workstation, another password.
    let path2 = format!("/api/v1/tenants/acme/devices/{}/logins", ws2.device);
    let (_, l2) = api(&s, &api_token, "POST", &path2, json!({})).await;
    let p2 = l2["password"].as_str().unwrap().to_string();
    assert_ne!(p2, password);
    wait_state(&s, &api_token, l2["id"].as_str().unwrap(), "active").await;
    assert!(opens(ws2.root.path(), "msp-nik", &p2));
    assert!(!opens(ws2.root.path(), "msp-nik", &password));

    let lines = audit_lines(&s, "login_active").await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("nik@nikpot.com logged into ")
                && l.ends_with(" with account msp-nik")),
        "{lines:?}"
    );

    // Ending: the password changes (never shown) and the account is locked and out of sudo.
    let (st, ended) = api(
        &s,
        &api_token,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        Value::Null,
    )
    .await;
    assert_eq!((st, ended["state"].as_str()), (200, Some("ended")));
    assert!(
        eventually(15, || locked(&root, "msp-nik")).await,
        "locked: {}",
        shadow(&root, "msp-nik")
    );
    wait_until(
        5,
        "!sudoers(&root).contains(&\"msp-nik\".to_string())",
        || !sudoers(&root).contains(&"msp-nik".to_string()),
    )
    .await;
    assert!(!opens(&root, "msp-nik", &password));
    assert!(
        eventually(15, || rotated(&root, "msp-nik", &password)).await,
        "rotated, not only locked"
    );
    let (st, _) = api(
        &s,
        &api_token,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 409, "already ended");

    // The portal: start, the password once, a second view is 404, one audited reveal.
    let r = admin
        .post(
            &format!("/t/acme/devices/{}/logins", ws.device),
            &[("duration_minutes", "20")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let reveal = r.headers()["location"].to_str().unwrap().to_string();
    let before = audit_lines(&s, "sensitive_read").await.len();
    let page = admin.get(&reveal).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let i = html.find("id=\"login-password\">").unwrap() + "id=\"login-password\">".len();
    let shown = html[i..i + html[i..].find('<').unwrap()].to_string();
    assert_eq!(
        admin.get(&reveal).await.status(),
        404,
        "a second view is impossible"
    );
    assert_eq!(audit_lines(&s, "sensitive_read").await.len(), before + 1);
    let portal_id = reveal.split('/').nth(4).unwrap().to_string();
    wait_state(&s, &api_token, &portal_id, "active").await;
    assert!(
        opens(&root, "msp-nik", &shown),
        "enabled again with the new password"
    );

    // Offline codes (named mode): after nik's online login here, not on a workstation he
    // never logged into.
    let code_page = admin
        .get(&format!("/t/acme/devices/{}/offline-code", ws.device))
        .await;
    assert_eq!(code_page.status(), 200);
    let html = code_page.text().await.unwrap();
    assert!(html.contains("id=\"offline-code\""), "{html}");
    let ws3 = enroll(&s, &token);
    let r = admin
        .get(&format!("/t/acme/devices/{}/offline-code", ws3.device))
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("first online login"));

    // The history shows versions, never passwords.
    let dev = admin
        .get(&format!("/t/acme/devices/{}", ws.device))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        dev.contains("Password history") && dev.contains("rotation"),
        "{dev}"
    );
    assert!(!dev.contains(&password) && !dev.contains(&shown));
    // ... and who revealed what when: the password's one view and the offline code.
    let revealed = &dev[dev.find("<h3>Revealed</h3>").expect("a Revealed table")..];
    assert!(
        revealed.contains("nik@nikpot.com")
            && revealed.contains("password (its one view)")
            && revealed.contains("offline code")
            && revealed.contains("msp-nik"),
        "{revealed}"
    );
    drop(ws3);
    ws.kill();
    ws2.kill();
    s.stop().await;
}

/// nik's first online login on a new workstation (which brings it its offline secret), ended,
/// and the offline code the portal then shows for it. The agent is left running.
pub async fn offline_code_for_nik(s: &TestServer) -> (crate::agent::Workstation, String) {
    let (_, token, mut admin) = tenant_and_admin(s).await;
    let api_token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let mut ws = enroll(s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (_, l) = api(
        s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": 10}),
    )
    .await;
    let id = l["id"].as_str().unwrap().to_string();
    let password = l["password"].as_str().unwrap().to_string();
    wait_state(s, &api_token, &id, "active").await;
    assert!(
        eventually(10, || ws.state_json()["offline"]["secret"].is_string()).await,
        "secret delivered"
    );
    api(
        s,
        &api_token,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        Value::Null,
    )
    .await;
    // Its end revokes (which locks), rotates (a new hash, unlocked) and disables: wait for
    // the last of the three.
    wait_until(15, "msp-nik rotated and locked", || {
        locked(&root, "msp-nik") && rotated(&root, "msp-nik", &password)
    })
    .await;

    let html = admin
        .get(&format!("/t/acme/devices/{}/offline-code", ws.device))
        .await
        .text()
        .await
        .unwrap();
    let i = html.find("id=\"offline-code\">").unwrap() + "id=\"offline-code\">".len();
    let code = html[i..i + 6].to_string();
    (ws, code)
}

/// Offline login on the workstation: the code from the portal works once, also across an
/// agent restart; the upload names the person and the secret is replaced.
#[actix_web::test]
async fn offline_codes_work_once_and_are_replaced_after_use() {
    let mut s = TestServer::start().await;
    let (mut ws, code) = offline_code_for_nik(&s).await;
    let root = ws.root.path().to_path_buf();
    // The appliance is out of reach: that is what offline codes are for.
    s.stop().await;
    let args = ws.args();
    let offline = |code: &str| {
        hourglass()
            .args([
                "agent",
                "offline-login",
                "--account",
                "msp-nik",
                "--code",
                code,
            ])
            .args(&args)
            .output()
            .unwrap()
    };
    let bad = offline("000000");
    assert!(
        !bad.status.success() && text(&bad).contains("wrong code"),
        "{}",
        text(&bad)
    );
    let out = offline(&code);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let pw = printed
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown once): "))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        opens(&root, "msp-nik", &pw),
        "enabled with the printed password"
    );
    assert!(text(&offline(&code)).contains("already been used"));
    ws.kill();
    ws.start();
    let replay = offline(&code);
    assert!(
        !replay.status.success() && text(&replay).contains("already been used"),
        "after a restart too"
    );
    s.restart().await;

    // The event reaches the appliance: the line names nik, and the used secret is replaced.
    let mut lines = Vec::new();
    for _ in 0..300 {
        lines = audit_lines(&s, "login_offline").await;
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("nik@nikpot.com logged into ")
                && l.contains("offline with account msp-nik")),
        "{lines:?}"
    );
    assert_eq!(audit_lines(&s, "offline_secret_rotated").await.len(), 1);
    ws.kill();
    s.stop().await;
}

/// Shared mode: switching needs the acknowledgement; one `msp-NNNN` account for the tenant;
/// two technicians use it and the audit names each; the code is available at once.
#[actix_web::test]
async fn shared_mode_one_account_two_technicians() {
    let mut s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let (st, e) = api(
        &s,
        &nik,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"login_mode": "shared"}),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    let (st, t) = api(
        &s,
        &nik,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"login_mode": "shared", "acknowledge_shared": true}),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(audit_lines(&s, "login_shared_mode_enabled").await.len(), 1);

    // A second technician, assigned to acme.
    let p = crate::people::admin_principal(&s).await;
    let msp = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "nikpot-it"))
        .await
        .unwrap()
        .unwrap();
    let acme = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    let o = Default::default();
    let new = service::users::NewUser {
        first_name: "Tess".into(),
        last_name: "Tech".into(),
        email: "tess@nikpot.com".into(),
        username: String::new(),
    };
    let c = service::users::create(s.ctx(), &p, &msp, new, &o)
        .await
        .unwrap();
    service::users::act(
        s.ctx(),
        &p,
        &msp,
        c.user.id,
        service::users::Action::AddRole("technician".into()),
        &o,
    )
    .await
    .unwrap();
    service::users::act(
        s.ctx(),
        &p,
        &msp,
        c.user.id,
        service::users::Action::AssignTenants {
            all: false,
            tenants: vec![acme.id],
        },
        &o,
    )
    .await
    .unwrap();
    let (mut tess_portal, _) = crate::people::enroll(&s, &c.enrollment_token).await;
    let tess =
        service::tokens::create_for_email(s.ctx(), "tess@nikpot.com", "t", sensitive_scope())
            .unwrap();

    let mut ws = enroll(&s, &token);
    let mut ws2 = enroll(&s, &token);
    ws.start();
    ws2.start();
    let (_, a) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws.device),
        json!({}),
    )
    .await;
    let account = a["account"].as_str().unwrap().to_string();
    assert!(
        account.starts_with("msp-")
            && account[4..].len() == 4
            && account[4..].bytes().all(|b| b.is_ascii_digit()),
        "{account}"
    );
    let (st, _) = api(
        &s,
        &tess,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws.device),
        json!({}),
    )
    .await;
    assert_eq!(st, 409, "the shared account is in use on that workstation");
    let (st, b) = api(
        &s,
        &tess,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws2.device),
        json!({}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["account"], account.as_str(), "one account for the tenant");
    wait_state(&s, &nik, a["id"].as_str().unwrap(), "active").await;
    wait_state(&s, &tess, b["id"].as_str().unwrap(), "active").await;
    assert!(
        sudoers(ws.root.path()).contains(&account) && sudoers(ws2.root.path()).contains(&account)
    );
    let lines = audit_lines(&s, "login_active").await;
    for who in ["nik@nikpot.com", "tess@nikpot.com"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{who} accessed "))
                    && l.ends_with(&format!("with account {account}"))),
            "{who}: {lines:?}"
        );
    }
    // Shared mode: tess sees the code of a workstation she never logged into.
    let ws3 = enroll(&s, &token);
    let r = tess_portal
        .get(&format!("/t/acme/devices/{}/offline-code", ws3.device))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // MFA-07: an uploaded offline use replaces the tenant's secret on every workstation.
    let secrets =
        |cmds: Vec<(String, String)>| cmds.iter().filter(|c| c.0 == "set_offline_secret").count();
    let mut before = Vec::new();
    for d in [ws.device, ws2.device, ws3.device] {
        before.push(secrets(commands_of(&s, acme.id, d).await));
    }
    let st = ws.state_json();
    let r = s
        .client()
        .post(format!("{}/agent/v1/events", s.base))
        .header("x-device-id", st["device_id"].as_str().unwrap())
        .bearer_auth(st["device_secret"].as_str().unwrap())
        .json(
            &json!({"events": [{"id": "off-1", "kind": "offline_login", "at": 0,
            "data": {"account": account, "step": 1, "expires_at": 0}}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (i, d) in [ws.device, ws2.device, ws3.device].into_iter().enumerate() {
        assert_eq!(
            secrets(commands_of(&s, acme.id, d).await),
            before[i] + 1,
            "workstation {i}"
        );
    }
    let lines = audit_lines(&s, "login_offline").await;
    assert!(
        lines[0].starts_with("someone with the offline code logged into"),
        "a shared code names nobody: {lines:?}"
    );
    ws.kill();
    ws2.kill();
    s.stop().await;
}

/// A restart of the appliance during a session loses nothing: the sweep ends it on time and
/// the password is rotated. Ciphertext moved to another row does not open (CRY-02).
#[actix_web::test]
async fn a_session_ends_on_time_across_a_restart() {
    let mut s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let (_, l) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws.device),
        json!({"duration_minutes": 30}),
    )
    .await;
    let (id, password) = (
        l["id"].as_str().unwrap().to_string(),
        l["password"].as_str().unwrap().to_string(),
    );
    wait_state(&s, &nik, &id, "active").await;
    assert!(opens(&root, "msp-nik", &password));

    s.stop().await;
    s.clock.advance_secs(31 * 60);
    s.restart().await;
    // The start-up sweep already expired it.
    wait_state(&s, &nik, &id, "expired").await;
    assert!(
        eventually(15, || locked(&root, "msp-nik")).await,
        "{}",
        shadow(&root, "msp-nik")
    );
    assert!(
        eventually(15, || rotated(&root, "msp-nik", &password)).await,
        "rotated"
    );
    let lines = audit_lines(&s, "login_expired").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    ws.kill();
    s.stop().await;
}

/// CRY-02: a sealed offline secret copied into another tenant's workstation row does not
/// open; the view answers 500 with a generic body and `crypt_decrypt_fail` is audited.
#[actix_web::test]
async fn ciphertext_moved_between_rows_does_not_open() {
    let mut s = TestServer::start().await;
    let (acme, token, mut admin) = tenant_and_admin(&s).await;
    let p = crate::people::admin_principal(&s).await;
    let o = Default::default();
    let beta = service::tenants::create(
        s.ctx(),
        &p,
        service::tenants::NewTenant {
            name: "Beta".into(),
            slug: "beta".into(),
        },
        &o,
    )
    .await
    .unwrap();
    let device_in = |t: hourglass::model::tenants::Tenant| {
        let (s, p) = (&s, p.clone());
        async move {
            let (_, secret, _) = service::devices::create_token(
                s.ctx(),
                &p,
                &t,
                service::devices::NewToken { hours: 1, uses: 1 },
                "https://x",
                &Default::default(),
            )
            .await
            .unwrap();
            let req = hourglass::proto::EnrollRequest {
                token: secret,
                hostname: format!("{}-pc", t.slug),
                os: "linux".into(),
                os_version: "12".into(),
                agent_version: "0".into(),
            };
            service::devices::enroll(s.ctx(), req, &Default::default())
                .await
                .unwrap()
                .device_id
        }
    };
    let _ = token;
    let a = device_in(acme.clone()).await;
    let b = device_in(beta.clone()).await;
    // Named mode: a first login creates each workstation's secret.
    for (t, d) in [(&acme, a), (&beta, b)] {
        service::logins::start(s.ctx(), &p, t, d, None, None, &o)
            .await
            .unwrap();
    }
    assert_eq!(
        admin
            .get(&format!("/t/beta/devices/{b}/offline-code"))
            .await
            .status(),
        403,
        "no online login yet"
    );
    s.stop().await;
    let db = rusqlite::Connection::open(s.data_dir().join("hourglass.db")).unwrap();
    db.execute(
        "UPDATE offline_secrets SET secret_sealed = (SELECT secret_sealed FROM offline_secrets WHERE device_id = ?1)
         WHERE device_id = ?2",
        [a.to_string(), b.to_string()],
    )
    .unwrap();
    // Let the view be allowed: nik's session on B counts as an online login.
    db.execute(
        "UPDATE logins SET started_at = created_at WHERE device_id = ?1",
        [b.to_string()],
    )
    .unwrap();
    drop(db);
    s.restart().await;
    let r = admin
        .get(&format!("/t/beta/devices/{b}/offline-code"))
        .await;
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("offline_secrets") && !body.contains("sealed"),
        "generic: {body}"
    );
    assert_eq!(audit_lines(&s, "crypt_decrypt_fail").await.len(), 1);
    assert_eq!(
        admin
            .get(&format!("/t/acme/devices/{a}/offline-code"))
            .await
            .status(),
        403
    );
    s.stop().await;
}

/// CRY-04 canary: after logins, reveals, offline codes and a rotation, none of the secrets
/// in play (passwords shown, offline secrets, the person's TOTP seed, the device secret, the
/// API token) appears in the database file, its WAL or SHM, or the agent's log.
#[actix_web::test]
async fn no_secret_reaches_the_database_files_or_logs() {
    let mut s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "canary", sensitive_scope())
            .unwrap();
    let (_, totp_seed) = {
        // A second person's enrollment gives a TOTP seed the test knows.
        let p = crate::people::admin_principal(&s).await;
        let msp = s
            .ctx()
            .db
            .read(hourglass::store::tenants::msp)
            .await
            .unwrap()
            .unwrap();
        let new = service::users::NewUser {
            first_name: "Cana".into(),
            last_name: "Ry".into(),
            email: "canary@nikpot.com".into(),
            username: String::new(),
        };
        let c = service::users::create(s.ctx(), &p, &msp, new, &Default::default())
            .await
            .unwrap();
        crate::people::enroll(&s, &c.enrollment_token).await
    };
    let mut ws = enroll(&s, &token);
    ws.start();
    let device_secret = ws.state_json()["device_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let mut passwords = Vec::new();
    for _ in 0..3 {
        let (_, l) = api(&s, &nik, "POST", &path, json!({})).await;
        let id = l["id"].as_str().unwrap().to_string();
        passwords.push(l["password"].as_str().unwrap().to_string());
        wait_state(&s, &nik, &id, "active").await;
        api(
            &s,
            &nik,
            "POST",
            &format!("/api/v1/tenants/acme/logins/{id}/end"),
            Value::Null,
        )
        .await;
        wait_until(15, "locked(ws.root.path(), \"msp-nik\")", || {
            locked(ws.root.path(), "msp-nik")
        })
        .await;
    }
    wait_until(
        10,
        "ws.state_json()[\"offline\"][\"secret\"].is_string()",
        || ws.state_json()["offline"]["secret"].is_string(),
    )
    .await;
    // CRED-02: six versions (three logins, three rotations): one current, three old ones
    // still sealed, the two oldest purged (rows kept, ciphertext gone), audited.
    let (t, d) = (
        s.ctx()
            .db
            .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
            .await
            .unwrap()
            .unwrap(),
        ws.device,
    );
    let mut history = Vec::new();
    for _ in 0..200 {
        let scope = hourglass::authz::system_scope(t.id);
        history = s
            .ctx()
            .db
            .read(move |r| hourglass::store::logins::credentials(r, &scope, d))
            .await
            .unwrap();
        if history.iter().all(|c| c.state.as_str() != "pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let count = |state: &str, sealed: bool| {
        history
            .iter()
            .filter(|c| c.state.as_str() == state && c.password_sealed.is_some() == sealed)
            .count()
    };
    assert_eq!(history.len(), 6);
    assert_eq!(
        (
            count("current", true),
            count("old", true),
            count("old", false)
        ),
        (1, 3, 2),
        "{history:?}"
    );
    assert!(
        !audit_lines(&s, "credential_history_purged")
            .await
            .is_empty()
    );
    let offline_secret = ws.state_json()["offline"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    ws.kill();

    let mut canaries: Vec<(String, Vec<u8>)> = vec![
        ("offline secret".into(), offline_secret.clone().into_bytes()),
        (
            "offline secret bytes".into(),
            hourglass::crypto::totp::from_base32(&offline_secret)
                .unwrap()
                .to_vec(),
        ),
        ("totp seed".into(), totp_seed.clone()),
        (
            "totp seed base32".into(),
            hourglass::crypto::totp::base32(&totp_seed).into_bytes(),
        ),
        ("device secret".into(), device_secret.into_bytes()),
        ("api token".into(), nik.into_bytes()),
    ];
    for (i, p) in passwords.iter().enumerate() {
        canaries.push((format!("password {i}"), p.clone().into_bytes()));
    }
    let data = s.data_dir();
    let agent_log = ws.root.path().join("var/log/hourglass-agent/actions.log");
    let scan = || {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.push(agent_log.clone());
        assert!(
            files.iter().any(|f| f.ends_with("hourglass.db")),
            "{files:?}"
        );
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            for (name, c) in &canaries {
                assert!(
                    !bytes.windows(c.len()).any(|w| w == c.as_slice()),
                    "{name} found in {}",
                    f.display()
                );
            }
        }
        files.len()
    };
    // While running (WAL and SHM present) and after the stop (checkpointed).
    assert!(scan() >= 3, "the database with its WAL and SHM");
    s.stop().await;
    scan();
}

pub async fn commands_of(
    s: &TestServer,
    t: hourglass::ids::TenantId,
    d: hourglass::ids::DeviceId,
) -> Vec<(String, String)> {
    let scope = hourglass::authz::system_scope(t);
    s.ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, d, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind.as_str().to_string(), c.state.as_str().to_string()))
        .collect()
}

/// A workstation that is offline: the session shows as waiting, expires cleanly, and when the
/// workstation comes back nothing is left enabled. A retired workstation is refused.
#[actix_web::test]
async fn a_login_on_an_offline_workstation_waits_and_expires_cleanly() {
    let mut s = TestServer::start().await;
    let (t, token, mut admin) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    let (st, l) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws.device),
        json!({"duration_minutes": 10}),
    )
    .await;
    assert_eq!(st, 201, "{l}");
    assert_eq!(l["state"], "waiting");
    let page = admin
        .get(&format!("/t/acme/devices/{}", ws.device))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("waiting for the workstation"), "{page}");

    s.clock.advance_secs(11 * 60);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(
        login_state(&s, &nik, l["id"].as_str().unwrap()).await,
        "expired"
    );
    let cmds = commands_of(&s, t.id, ws.device).await;
    assert!(
        cmds.contains(&("ensure_account".into(), "expired".into())),
        "never delivered: {cmds:?}"
    );
    // Its password never reached the workstation: failed and forgotten, so it is no longer
    // "on its way" and rollback detection (CRED-05) keeps watching the account.
    let creds: Vec<(String, bool)> = {
        let c = rusqlite::Connection::open(s.data_dir().join("hourglass.db")).unwrap();
        let mut st = c
            .prepare(
                "SELECT c.state, c.password_sealed IS NULL FROM credentials c
                 JOIN commands m ON m.id = c.command_id WHERE m.kind = 'ensure_account'",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(creds == [("failed".to_string(), true)], "{creds:?}");

    // Back online: the expired order is not delivered; the clean-up runs; nothing enabled.
    ws.start();
    let done = || async {
        commands_of(&s, t.id, ws.device)
            .await
            .iter()
            .all(|(_, st)| st != "queued")
    };
    let mut settled = false;
    for _ in 0..300 {
        if done().await {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(settled, "{:?}", commands_of(&s, t.id, ws.device).await);
    assert!(!sudoers(&root).contains(&"msp-nik".to_string()));
    assert!(shadow(&root, "msp-nik").is_empty() || locked(&root, "msp-nik"));

    // Retired: refused with a clear message, nothing queued.
    let p = crate::people::admin_principal(&s).await;
    service::devices::retire(s.ctx(), &p, &t, ws.device, &Default::default())
        .await
        .unwrap();
    let before = commands_of(&s, t.id, ws.device).await.len();
    let (st, e) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/devices/{}/logins", ws.device),
        json!({}),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    assert!(e["message"].as_str().unwrap().contains("retired"), "{e}");
    assert_eq!(commands_of(&s, t.id, ws.device).await.len(), before);
    ws.kill();
    s.stop().await;
}

/// A log-on as login(1) records it in the root's utmp.
fn log_on(root: &Path, account: &str, line: &str, at: i64) {
    use std::io::Write;
    std::fs::create_dir_all(root.join("run")).unwrap();
    let rec = hourglass::agent::utmp::record(&hourglass::agent::utmp::LoggedOn {
        user: account.into(),
        line: line.into(),
        host: "203.0.113.9".into(),
        at,
    });
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("run/utmp"))
        .unwrap()
        .write_all(&rec)
        .unwrap();
}

/// CRED-03: the agent reports log-ons of managed accounts it sees in utmp. During a session
/// that is fine; outside any session it is audited, and after the grace period the password
/// is rotated and the account locked.
#[actix_web::test]
async fn a_log_on_outside_any_session_gets_the_account_rotated_and_locked() {
    let s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let api_token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (st, l) = api(
        &s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": 30}),
    )
    .await;
    assert_eq!(st, 201, "{l}");
    let id = l["id"].as_str().unwrap().to_string();
    wait_state(&s, &api_token, &id, "active").await;

    // During the session: reported, nothing else.
    log_on(&root, "msp-nik", "pts/1", 1_795_392_000);
    log_on(&root, "bob", "pts/2", 1_795_392_001); // not a managed account: not reported
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = audit_details(&s, "300").await;
        if seen.iter().any(|d| d["data"]["observed"] == true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let observed: Vec<_> = seen
        .iter()
        .filter(|d| d["data"]["observed"] == true)
        .collect();
    assert_eq!(observed.len(), 1, "{seen:?}");
    // The chain names nik's account by nik's id (DESIGN §6), the sentence is joined in.
    let nik_id = s
        .ctx()
        .db
        .read(|r| hourglass::store::users::credentials_by_email(r, "nik@nikpot.com"))
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    assert_eq!(observed[0]["data"]["account_of"], nik_id.to_string());
    assert!(observed[0]["data"].get("account").is_none(), "{observed:?}");
    assert_eq!(observed[0]["data"]["line"], "pts/1");
    assert!(audit_details(&s, "login_outside_session").await.is_empty());

    let (st, _) = api(
        &s,
        &api_token,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    wait_until(15, "locked(&root, \"msp-nik\")", || {
        locked(&root, "msp-nik")
    })
    .await;
    let after_end = shadow(&root, "msp-nik");

    // Outside any session: audited at once, rotated and locked when the grace period ends.
    log_on(&root, "msp-nik", "pts/3", 1_795_392_600);
    let mut stray = Vec::new();
    for _ in 0..300 {
        stray = audit_details(&s, "login_outside_session").await;
        if !stray.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stray.len(), 1, "reported once");
    assert_eq!(stray[0]["line"], "pts/3");
    service::logins::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
    assert!(
        audit_details(&s, "login_outside_session_rotated")
            .await
            .is_empty(),
        "not before the grace period"
    );
    s.clock.advance_secs(5 * 60 + 1);
    service::logins::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
    assert_eq!(
        audit_details(&s, "login_outside_session_rotated")
            .await
            .len(),
        1
    );
    assert!(
        eventually(15, || shadow(&root, "msp-nik") != after_end
            && locked(&root, "msp-nik"))
        .await,
        "rotated and locked: {}",
        shadow(&root, "msp-nik")
    );
    // The rotation is escrowed like any other, with no session behind it.
    let p = crate::people::admin_principal(&s).await;
    let t = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    let mut history = Vec::new();
    for _ in 0..100 {
        // The acknowledgement may land just after the shadow file changed.
        history = service::logins::history(s.ctx(), &p, &t, ws.device)
            .await
            .unwrap();
        if history
            .iter()
            .any(|c| c.login_id.is_none() && c.state.as_str() == "current")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rotations: Vec<_> = history
        .iter()
        .filter(|c| c.reason.as_str() == "rotation")
        .collect();
    assert_eq!(
        rotations.len(),
        2,
        "the end of the session, and the stray log-on"
    );
    assert!(
        rotations
            .iter()
            .any(|c| c.login_id.is_none() && c.state.as_str() == "current")
    );
    ws.kill();
}

/// The offline session length is a tenant setting; a change reaches the workstations with
/// their (unchanged) offline secret.
#[actix_web::test]
async fn the_offline_session_length_is_a_tenant_setting() {
    let s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let api_token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let (st, _) = api(
        &s,
        &api_token,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"login_mode": "shared", "acknowledge_shared": true}),
    )
    .await;
    assert_eq!(st, 200);
    let offline = |ws: &crate::agent::Workstation| ws.state_json()["offline"].clone();
    assert!(
        eventually(15, || offline(&ws)["minutes"] == 60).await,
        "{}",
        offline(&ws)
    );
    let secret = offline(&ws)["secret"].clone();
    let (st, e) = api(
        &s,
        &api_token,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"offline_login_minutes": 2}),
    )
    .await;
    assert!(
        st == 422
            && e["message"]
                .as_str()
                .unwrap()
                .contains("offline_login_minutes"),
        "{e}"
    );
    let (st, t) = api(
        &s,
        &api_token,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"offline_login_minutes": 90}),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["settings"]["offline_login_minutes"], 90);
    assert!(
        eventually(15, || offline(&ws)["minutes"] == 90).await,
        "{}",
        offline(&ws)
    );
    assert_eq!(
        offline(&ws)["secret"],
        secret,
        "the same secret, a new length"
    );
    ws.kill();
}

/// CRED-05: restoring an older copy of the agent's state (a VM snapshot) makes it report a
/// password version the appliance has moved past; at that first poll the password is
/// rotated and the account disabled, audited once.
#[actix_web::test]
async fn a_rolled_back_agent_gets_the_password_rotated_at_its_first_poll() {
    let s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let api_token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (_, l) = api(
        &s,
        &api_token,
        "POST",
        &path,
        json!({"duration_minutes": 30}),
    )
    .await;
    let id = l["id"].as_str().unwrap().to_string();
    wait_state(&s, &api_token, &id, "active").await;
    let version = |ws: &crate::agent::Workstation| {
        ws.state_json()["password_versions"]["msp-nik"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let v1 = version(&ws);
    assert!(
        v1.starts_with("cred-"),
        "the agent keeps the version: {v1:?}"
    );
    let snapshot = std::fs::read(ws.state.path().join("state.json")).unwrap();

    let (st, _) = api(
        &s,
        &api_token,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    wait_until(
        15,
        "locked(&root, \"msp-nik\") && version(&ws) != v1",
        || locked(&root, "msp-nik") && version(&ws) != v1,
    )
    .await;
    let rollbacks = || audit_details(&s, "credential_rollback_detected");
    // Once the rotation's acknowledgement has landed, nothing was flagged.
    all_acknowledged(&s, ws.device).await;
    assert!(
        rollbacks().await.is_empty(),
        "an up-to-date agent is not a rollback"
    );
    let after_end = shadow(&root, "msp-nik");

    ws.kill();
    std::fs::write(ws.state.path().join("state.json"), snapshot).unwrap();
    ws.start();
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = rollbacks().await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["reported_version"], v1.as_str());
    assert!(
        eventually(15, || shadow(&root, "msp-nik") != after_end
            && locked(&root, "msp-nik"))
        .await,
        "rotated again and locked"
    );
    wait_until(15, "version(&ws) != v1", || version(&ws) != v1).await;
    all_acknowledged(&s, ws.device).await;
    assert_eq!(rollbacks().await.len(), 1, "once");
    ws.kill();
}

/// A stray log-on whose workstation is retired during the grace period is set aside: the
/// sweep still succeeds and goes on to everything else, instead of failing at every run.
#[actix_web::test]
async fn a_stray_on_a_retired_workstation_does_not_stall_the_sweep() {
    let s = TestServer::start().await;
    let (t, token, _) = tenant_and_admin(&s).await;
    let d = crate::requests::Device::enroll(&s, &token).await;
    let device = hourglass::ids::DeviceId::parse(&d.id).unwrap();
    let now = s.clock.now();
    s.ctx()
        .db
        .write(move |tx| {
            service::logins::observed_logon(
                tx,
                t.id,
                device,
                &json!({"account": "msp-nik", "line": "pts/1", "observed": true}),
                now,
            )
        })
        .await
        .unwrap();
    let mut p = crate::people::admin_principal(&s).await;
    p.mfa_at = Some(now);
    let acme = service::tenants::resolve(s.ctx(), &p, "acme", &Default::default())
        .await
        .unwrap();
    service::devices::retire(s.ctx(), &p, &acme, device, &Default::default())
        .await
        .unwrap();
    s.clock.advance_secs(6 * 60);
    let now = s.clock.now();
    service::jobs::sweep(s.ctx(), now).await.unwrap();
    let state: String = rusqlite::Connection::open(s.data_dir().join("hourglass.db"))
        .unwrap()
        .query_row("SELECT state FROM stray_logons", [], |row| row.get(0))
        .unwrap();
    assert_eq!(state, "cleared");
    assert!(
        audit_details(&s, "login_outside_session_rotated")
            .await
            .is_empty()
    );
}

/// Waits until the device has acknowledged every command it was sent (a positive signal
/// before asserting that something did not happen); fails saying so after 15 s.
async fn all_acknowledged(s: &TestServer, device: hourglass::ids::DeviceId) {
    for _ in 0..300 {
        let now = s.ctx().clock.now();
        let pending = s
            .ctx()
            .db
            .read(move |r| hourglass::store::commands::pending(r, device, now))
            .await
            .unwrap();
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("device {device} still has unacknowledged commands after 15 s");
}

/// Tess, a technician assigned to acme, logged in to a running workstation (msp-tess in
/// sudo) and shown its offline code.
struct TessLoggedIn {
    /// nik's sensitive API token, and nik signed in to the portal.
    nik: String,
    admin: crate::people::Http,
    tess: crate::fixture::Person,
    acme: hourglass::model::tenants::Tenant,
    msp: hourglass::model::tenants::Tenant,
    ws: crate::agent::Workstation,
    login: String,
    password: String,
    /// Offline-secret commands the workstation has had so far.
    secrets_before: usize,
}

async fn tess_logged_in(s: &TestServer) -> TessLoggedIn {
    let (_, token, admin) = tenant_and_admin(s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let p = crate::fixture::fresh_admin(s).await;
    let tenant = |slug: &'static str| async move {
        s.ctx()
            .db
            .read(move |r| hourglass::store::tenants::by_slug(r, slug))
            .await
            .unwrap()
            .unwrap()
    };
    let (msp, acme) = (tenant("nikpot-it").await, tenant("acme").await);
    let mut tess = crate::fixture::person(s, &msp, "tess@nikpot.com", &["technician"]).await;
    let assign = service::users::Action::AssignTenants {
        all: false,
        tenants: vec![acme.id],
    };
    service::users::act(s.ctx(), &p, &msp, tess.id, assign, &Default::default())
        .await
        .unwrap();
    let mut ws = enroll(s, &token);
    ws.start();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (st, l) = api(s, &tess.token, "POST", &path, json!({})).await;
    assert_eq!(st, 201, "{l}");
    assert_eq!(l["account"], "msp-tess");
    let (id, password) = (
        l["id"].as_str().unwrap().to_string(),
        l["password"].as_str().unwrap().to_string(),
    );
    wait_state(s, &nik, &id, "active").await;
    assert!(sudoers(ws.root.path()).contains(&"msp-tess".to_string()));
    let code = tess
        .http
        .get(&format!("/t/acme/devices/{}/offline-code", ws.device))
        .await;
    assert_eq!(code.status(), 200, "tess is shown the offline code");
    let secrets_before = offline_secrets(s, &acme, &ws).await;
    TessLoggedIn {
        nik,
        admin,
        tess,
        acme,
        msp,
        ws,
        login: id,
        password,
        secrets_before,
    }
}

async fn offline_secrets(
    s: &TestServer,
    t: &hourglass::model::tenants::Tenant,
    ws: &crate::agent::Workstation,
) -> usize {
    commands_of(s, t.id, ws.device)
        .await
        .iter()
        .filter(|c| c.0 == "set_offline_secret")
        .count()
}

/// msp-tess is out of sudo, locked and has a new password on the workstation.
fn locked_out(root: &Path, password: &str) -> bool {
    !sudoers(root).contains(&"msp-tess".to_string())
        && locked(root, "msp-tess")
        && rotated(root, "msp-tess", password)
}

/// Offboarding locks out: disabling a technician in the middle of a login revokes it on the
/// workstation (rights removed, password rotated, account locked), replaces the offline
/// secret whose code they were shown, and ends their portal sessions and API tokens — all in
/// the transaction that disables them, audited with what was ended.
#[actix_web::test]
async fn disabling_a_technician_ends_what_they_hold_on_every_workstation() {
    let s = TestServer::start().await;
    let TessLoggedIn {
        nik,
        mut admin,
        mut tess,
        acme,
        mut ws,
        login: id,
        password,
        secrets_before: before,
        ..
    } = tess_logged_in(&s).await;
    // Disabled from her page in the portal, which says what ended with it.
    let disable = format!("/t/nikpot-it/users/{}/disable", tess.id);
    let r = admin.post(&disable, &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 200);
    let said = r.text().await.unwrap();
    assert!(
        said.contains(
            "Ended 1 portal session, 1 API token and 1 technician login; replaced 1 offline secret."
        ),
        "{said}"
    );

    // Ended on the appliance at once…
    assert_eq!(login_state(&s, &nik, &id).await, "revoked");
    assert_eq!(offline_secrets(&s, &acme, &ws).await, before + 1);
    let (st, _) = api(
        &s,
        &tess.token,
        "GET",
        "/api/v1/tenants/acme/logins",
        Value::Null,
    )
    .await;
    assert_eq!(st, 401, "her API token is revoked");
    let r = tess.http.get("/t/acme/devices").await;
    assert_ne!(r.status(), 200, "her portal session is gone");
    let ended = audit_details(&s, "user_disabled").await;
    assert_eq!(ended[0]["logins_ended"], 1, "{ended:?}");
    assert_eq!(ended[0]["offline_secrets_replaced"], 1, "{ended:?}");
    // …and on the workstation once it has acted.
    let root = ws.root.path().to_path_buf();
    assert!(
        eventually(20, || locked_out(&root, &password)).await,
        "msp-tess is out of sudo, locked and has a new password"
    );
    ws.kill();
}

/// Unassigning a technician from a tenant ends what they hold there, and only there: the
/// login in acme is revoked and acme's secret replaced, while they stay signed in.
#[actix_web::test]
async fn unassigning_a_technician_ends_their_logins_in_that_tenant() {
    let s = TestServer::start().await;
    let TessLoggedIn {
        nik,
        mut tess,
        acme,
        msp,
        mut ws,
        login: id,
        password,
        secrets_before: before,
        ..
    } = tess_logged_in(&s).await;
    let p = crate::fixture::fresh_admin(&s).await;
    let unassign = service::users::Action::AssignTenants {
        all: false,
        tenants: vec![],
    };
    service::users::act(s.ctx(), &p, &msp, tess.id, unassign, &Default::default())
        .await
        .unwrap();
    assert_eq!(login_state(&s, &nik, &id).await, "revoked");
    assert_eq!(offline_secrets(&s, &acme, &ws).await, before + 1);
    let ended = audit_details(&s, "user_tenants_assigned").await;
    assert_eq!(ended[0]["logins_ended"], 1, "{ended:?}");
    let r = tess.http.get("/account").await;
    assert_eq!(
        r.status(),
        200,
        "she is still signed in: only acme's access ended"
    );
    let root = ws.root.path().to_path_buf();
    assert!(
        eventually(20, || locked_out(&root, &password)).await,
        "msp-tess is out of sudo, locked and has a new password"
    );
    ws.kill();
}

/// Offboarding a workstation that is offline: removing the technician role ends her login on
/// the appliance at once and says the workstation is offline; its orders wait as queued and
/// it locks her out when it checks in again.
#[actix_web::test]
async fn removing_the_role_while_the_workstation_is_offline_waits_for_it() {
    let s = TestServer::start().await;
    let TessLoggedIn {
        nik,
        tess,
        acme,
        msp,
        mut ws,
        login: id,
        password,
        ..
    } = tess_logged_in(&s).await;
    ws.kill();
    // Its held long-poll answers into the closed connection, and two minutes pass unseen.
    s.ctx().wake.wake(ws.device);
    wait_until(10, "the workstation's poll let go", || {
        !s.ctx().wake.is_connected(ws.device)
    })
    .await;
    s.clock.advance_secs(120);
    let p = crate::fixture::fresh_admin(&s).await;
    let remove = service::users::Action::RemoveRole("technician".into());
    let acted =
        service::users::act_reporting(s.ctx(), &p, &msp, tess.id, remove, &Default::default())
            .await
            .unwrap();
    let said = acted.ended.unwrap().sentence();
    assert!(
        said.contains("1 technician login")
            && said.contains("1 workstation is offline: it acts on this when it next checks in."),
        "{said}"
    );
    assert_eq!(login_state(&s, &nik, &id).await, "revoked");
    let queued: Vec<_> = commands_of(&s, acme.id, ws.device)
        .await
        .into_iter()
        .filter(|c| c.1 == "queued")
        .map(|c| c.0)
        .collect();
    for kind in ["revoke_admin", "rotate_password", "disable_account"] {
        assert!(queued.iter().any(|k| k == kind), "{kind} waits: {queued:?}");
    }
    let root = ws.root.path().to_path_buf();
    assert!(
        !locked_out(&root, &password),
        "not yet: the workstation is off"
    );
    ws.start();
    assert!(
        eventually(20, || locked_out(&root, &password)).await,
        "msp-tess is out of sudo, locked and has a new password once it is back"
    );
    ws.kill();
}
