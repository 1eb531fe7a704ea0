//! End-user JIT admin sessions: the rules over HTTP, and one session end to end with the real
//! agent in a throw-away root.

use std::time::Duration;

use hourglass::service;
use serde_json::{Value, json};

use crate::agent::{enroll, eventually, sudoers, tenant_and_admin, tenant_with_token, wait_until};
use crate::people::admin_principal;
use crate::support::*;

/// A device's credentials on the agent API, for requests straight over HTTP.
pub struct Device {
    pub c: reqwest::Client,
    pub base: String,
    pub id: String,
    pub secret: String,
}

impl Device {
    pub async fn enroll(s: &TestServer, token: &str) -> Device {
        Device::enroll_as(s, token, "W11-REQ").await
    }
    pub async fn enroll_as(s: &TestServer, token: &str, hostname: &str) -> Device {
        let c = s.client();
        let body = json!({"token": token, "hostname": hostname, "os": "linux", "os_version": "12", "agent_version": "0"});
        let v: Value = c
            .post(format!("{}/agent/v1/enroll", s.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Device {
            c,
            base: s.base.clone(),
            id: v["device_id"].as_str().unwrap().into(),
            secret: v["device_secret"].as_str().unwrap().into(),
        }
    }
    pub async fn ask(&self, account: &str, minutes: i64, reason: &str) -> (u16, Value) {
        let r = self
            .c
            .post(format!("{}/agent/v1/requests", self.base))
            .header("x-device-id", &self.id)
            .bearer_auth(&self.secret)
            .json(&json!({"account": account, "minutes": minutes, "reason": reason, "ticket": "INC-7"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }
}

/// Management API as the MSP admin.
/// The accounts of acme's pending requests, as the management API lists them.
pub async fn pending_accounts(s: &TestServer) -> Vec<String> {
    let api = api_token(s).await;
    let v: Value = s
        .client()
        .get(s.url("/api/v1/tenants/acme/requests?state=pending"))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["account"].as_str().map(str::to_string))
        .collect()
}

pub async fn api_token(s: &TestServer) -> String {
    service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "requests", sensitive_scope())
        .unwrap()
}

pub async fn decide(
    s: &TestServer,
    token: &str,
    id: &str,
    verb: &str,
    body: Value,
) -> (u16, Value) {
    let r = s
        .client()
        .post(format!(
            "{}/api/v1/tenants/acme/requests/{id}/{verb}",
            s.base
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[actix_web::test]
async fn request_rules_are_enforced_by_the_server() {
    let mut s = TestServer::start().await;
    let (t, token) = tenant_with_token(&s).await;
    let d = Device::enroll(&s, &token).await;
    let api = api_token(&s).await;

    // Bounds and the justification.
    assert_eq!(d.ask("bob", 4, "x").await.0, 422);
    assert_eq!(d.ask("bob", 1441, "x").await.0, 422);
    let (st, e) = d.ask("bob", 30, "  ").await;
    assert_eq!(st, 422, "justification required by default");
    assert!(e["message"].as_str().unwrap().contains("justification"));
    let (st, e) = d.ask("bob", 300, "x").await;
    assert_eq!(st, 422, "over the tenant maximum (240)");
    assert!(e["message"].as_str().unwrap().contains("240"));

    // One open request per user, named in the refusal.
    let (st, first) = d.ask("bob", 30, "install the printer driver").await;
    assert_eq!(st, 201);
    assert_eq!(first["state"], "pending");
    let id = first["id"].as_str().unwrap().to_string();
    let (st, e) = d.ask("bob", 30, "again").await;
    assert_eq!(st, 409);
    assert!(e["message"].as_str().unwrap().contains(&id), "{e}");

    // Approval: more than the tenant allows is refused; then one winner among 50 decisions.
    assert_eq!(
        decide(
            &s,
            &api,
            &id,
            "approve",
            json!({"duration_minutes": 25 * 60})
        )
        .await
        .0,
        422
    );
    let (st, e) = decide(
        &s,
        &api,
        &id,
        "approve",
        json!({"duration_minutes": "twenty"}),
    )
    .await;
    assert_eq!(st, 422, "not a number: refused, not defaulted: {e}");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (c, base, api, id) = (s.client(), s.base.clone(), api.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let (verb, body) = if i % 2 == 0 {
                ("approve", json!({"duration_minutes": 20}))
            } else {
                ("deny", json!({"reason": "no"}))
            };
            c.post(format!("{base}/api/v1/tenants/acme/requests/{id}/{verb}"))
                .bearer_auth(api)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one decision wins");
    let scope = hourglass::authz::system_scope(t.id);
    let did = hourglass::ids::DeviceId::parse(&d.id).unwrap();
    let grants = s
        .ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, did, 100))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.kind.as_str() == "grant_admin")
        .count();
    assert!(grants <= 1, "one grant at most");

    // Timed out: a pending request past the tenant's timeout (24 h by default).
    let (_, pending) = d.ask("carol", 30, "needs a tool").await;
    s.clock.advance_secs(24 * 3600 + 1);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    let v: Value = s
        .client()
        .get(format!(
            "{}/api/v1/tenants/acme/requests?state=timed_out",
            s.base
        ))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == pending["id"]),
        "{v}"
    );
    assert_eq!(
        decide(
            &s,
            &api,
            pending["id"].as_str().unwrap(),
            "approve",
            json!({})
        )
        .await
        .0,
        409,
        "a finished request cannot be approved"
    );
    s.stop().await;
}

#[actix_web::test]
async fn disabled_jit_declines_and_auto_approval_and_self_approval_rules_hold() {
    let mut s = TestServer::start().await;
    let (t, token) = tenant_with_token(&s).await;
    let d = Device::enroll(&s, &token).await;
    let p = admin_principal(&s).await;
    let o = Default::default();

    // JIT off: recorded and declined at once with the product's message.
    let mut off = t.settings.clone();
    off.jit_enabled = false;
    let upd = |settings| service::tenants::TenantUpdate {
        name: None,
        slug: None,
        active: None,
        settings,
        acknowledge_shared: false,
    };
    let t2 = service::tenants::update(s.ctx(), &p, &t, upd(off), &o)
        .await
        .unwrap();
    let (st, v) = d.ask("bob", 30, "x").await;
    assert_eq!(st, 201);
    assert_eq!(v["state"], "declined");
    assert_eq!(v["reason"], "Just-in-time requests are disabled");
    let mut on = t2.settings.clone();
    on.jit_enabled = true;
    service::tenants::update(s.ctx(), &p, &t2, upd(on), &o)
        .await
        .unwrap();

    // Auto-approval: a rule for dave up to 60 minutes approves at once; 90 minutes does not match.
    let api = api_token(&s).await;
    let rules = format!("{}/api/v1/tenants/acme/auto-approval-rules", s.base);
    let bad = s
        .client()
        .post(&rules)
        .bearer_auth(&api)
        .json(&json!({"name": "x", "max_minutes": 60, "from": "25:00", "to": "08:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let half = s
        .client()
        .post(&rules)
        .bearer_auth(&api)
        .json(&json!({"name": "x", "max_minutes": 60, "from": "08:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(half.status(), 422, "both ends of a window");
    let r = s
        .client()
        .post(&rules)
        .bearer_auth(&api)
        .json(&json!({"name": "Dave's printer", "account": "dave", "max_minutes": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, v) = d.ask("dave", 90, "long job").await;
    assert_eq!(v["state"], "pending", "no rule covers 90 minutes");
    assert_eq!(
        decide(
            &s,
            &api,
            v["id"].as_str().unwrap(),
            "deny",
            json!({"reason": "ask for less"})
        )
        .await
        .0,
        200
    );
    let (_, v) = d.ask("dave", 45, "printer").await;
    assert_eq!(v["state"], "approved");
    assert_eq!(v["decided_by_rule"], true);

    // Self-approval: the approver's own workstation account.
    let (_, mine) = d.ask("msp-nik", 30, "my own").await;
    let (st, e) = decide(&s, &api, mine["id"].as_str().unwrap(), "approve", json!({})).await;
    assert_eq!(st, 403, "{e}");
    assert!(e["message"].as_str().unwrap().contains("own request"));
    s.stop().await;
}

/// The whole session with the real agent: request on the workstation, approve through the
/// API, the user is in the root's sudo group, the clock passes the deadline, the rights are
/// gone and the user logged off; the audit trail carries RequestIdentifier and TicketIdentifier.
#[actix_web::test]
async fn a_session_end_to_end_with_the_real_agent() {
    let mut s = TestServer::start().await;
    let (_, token) = tenant_with_token(&s).await;
    let mut ws = enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    std::fs::write(
        root.join("etc/passwd"),
        std::fs::read_to_string(root.join("etc/passwd")).unwrap()
            + "bob:x:1001:1001::/home/bob:/bin/bash\n",
    )
    .unwrap();
    ws.start();
    let args = ws.args();
    let out = hourglass()
        .args([
            "agent",
            "request-admin",
            "--minutes",
            "30",
            "--reason",
            "install the printer driver",
            "--ticket",
            "INC-42",
            "--user",
            "bob",
        ])
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );
    let api = api_token(&s).await;
    let v: Value = s
        .client()
        .get(format!(
            "{}/api/v1/tenants/acme/requests?state=pending",
            s.base
        ))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["requests"][0]["id"].as_str().unwrap().to_string();
    let (st, approved) = decide(&s, &api, &id, "approve", json!({"duration_minutes": 20})).await;
    assert_eq!(st, 200, "{approved}");
    let granted = eventually(15, || sudoers(&root).contains(&"bob".to_string())).await;
    if !granted {
        let v: Value = s
            .client()
            .get(format!(
                "{}/api/v1/tenants/acme/devices/{}",
                s.base, ws.device
            ))
            .bearer_auth(&api)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        panic!("bob is not an administrator: {}", v["commands"]);
    }
    let status = hourglass()
        .args(["agent", "status"])
        .args(&args)
        .output()
        .unwrap();
    assert!(text(&status).contains("approved"), "{}", text(&status));
    let actions = || {
        std::fs::read_to_string(root.join("var/log/hourglass-agent/actions.log"))
            .unwrap_or_default()
    };
    assert!(
        eventually(10, || actions().contains("approved for 20 minutes")).await,
        "the requester is told the outcome: {}",
        actions()
    );

    // The deadline passes on the appliance's clock: swept to expired, revoked, logged off.
    s.clock.advance_secs(21 * 60);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert!(
        eventually(15, || !sudoers(&root).contains(&"bob".to_string())).await,
        "rights removed"
    );
    assert!(
        eventually(5, || actions().contains("logoff bob")).await,
        "{}",
        actions()
    );
    // The agent's own events (the 300 logon, the end of the grant) arrive stamped too.
    let mut trail = Vec::new();
    for _ in 0..200 {
        trail = audit_trail(&s).await;
        let stamped = |code: &str| {
            trail
                .iter()
                .any(|(e, r, _)| e == code && r.as_deref() == Some(id.as_str()))
        };
        if stamped("300")
            && trail
                .iter()
                .filter(|(e, r, _)| e == "device_event" && r.as_deref() == Some(id.as_str()))
                .count()
                >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for event in [
        "request_created",
        "request_approved",
        "request_expired",
        "300",
        "device_event",
    ] {
        assert!(
            trail.iter().any(|(e, r, t)| e == event
                && r.as_deref() == Some(id.as_str())
                && t.as_deref() == Some("INC-42")),
            "{event} with RequestIdentifier and TicketIdentifier: {trail:?}"
        );
    }
    ws.kill();
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.stop().await;
}

/// The same session approved in the portal, with the appliance stopped before the deadline:
/// the agent removes the rights and logs the user off alone, on its own clock (AGT-05).
#[actix_web::test]
async fn a_session_ends_on_time_with_the_appliance_stopped() {
    let mut s = TestServer::start().await;
    s.follow_real_time();
    let (t, token, mut admin) = tenant_and_admin(&s).await;
    let mut ws = enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    std::fs::write(
        root.join("etc/passwd"),
        std::fs::read_to_string(root.join("etc/passwd")).unwrap()
            + "bob:x:1001:1001::/home/bob:/bin/bash\n",
    )
    .unwrap();
    ws.start();
    let out = hourglass()
        .args([
            "agent",
            "request-admin",
            "--minutes",
            "5",
            "--reason",
            "driver",
            "--user",
            "bob",
        ])
        .args(ws.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let api = api_token(&s).await;
    let v: Value = s
        .client()
        .get(format!(
            "{}/api/v1/tenants/acme/requests?state=pending",
            s.base
        ))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["requests"][0]["id"].as_str().unwrap().to_string();
    let r = admin
        .post(
            &format!("/t/acme/requests/{id}/approve"),
            &[("duration_minutes", "5")],
        )
        .await;
    assert_eq!(r.status(), 303, "approved in the portal");
    wait_until(15, "sudoers(&root).contains(&\"bob\".to_string())", || {
        sudoers(&root).contains(&"bob".to_string())
    })
    .await;

    // The appliance's clock moves to 8 s before the deadline; a notice shows the agent has
    // polled (and learned that time) since. Then the appliance goes away.
    s.clock.advance_secs(5 * 60 - 8);
    service::commands::queue(
        s.ctx(),
        &hourglass::authz::system_scope(t.id),
        ws.device,
        hourglass::model::commands::Action::Notify {
            message: "clock-probe".into(),
        },
    )
    .await
    .unwrap();
    let actions = || {
        std::fs::read_to_string(root.join("var/log/hourglass-agent/actions.log"))
            .unwrap_or_default()
    };
    wait_until(15, "actions().contains(\"clock-probe\")", || {
        actions().contains("clock-probe")
    })
    .await;
    s.stop().await;
    assert!(
        sudoers(&root).contains(&"bob".to_string()),
        "still an administrator before the deadline"
    );
    assert!(
        eventually(15, || !sudoers(&root).contains(&"bob".to_string())).await,
        "revoked by the agent alone"
    );
    assert!(
        eventually(5, || actions().contains("logoff bob")).await,
        "{}",
        actions()
    );
    ws.kill();
}

/// (event code, RequestIdentifier, TicketIdentifier) of every audit entry.
async fn authz_fails(s: &TestServer) -> i64 {
    s.ctx()
        .db
        .read(|r| hourglass::store::audit::count_event(r, "authz_fail"))
        .await
        .unwrap()
}

async fn audit_trail(s: &TestServer) -> Vec<(String, Option<String>, Option<String>)> {
    s.ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    limit: 500,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.event, e.request_identifier, e.ticket_identifier))
        .collect()
}

/// An extension goes through approval and moves the running session's deadline without a gap.
#[actix_web::test]
async fn an_approved_extension_moves_the_deadline() {
    let mut s = TestServer::start().await;
    let (_, token) = tenant_with_token(&s).await;
    let d = Device::enroll(&s, &token).await;
    let api = api_token(&s).await;
    let extend = |minutes: i64| {
        d.c.post(format!("{}/agent/v1/requests", d.base))
            .header("x-device-id", &d.id)
            .bearer_auth(&d.secret)
            .json(&json!({"account": "bob", "minutes": minutes, "reason": "not done yet", "kind": "extension"}))
            .send()
    };
    assert_eq!(
        extend(30).await.unwrap().status(),
        409,
        "nothing to extend yet"
    );
    let (_, r) = d.ask("bob", 30, "install").await;
    let id = r["id"].as_str().unwrap().to_string();
    let (_, approved) = decide(&s, &api, &id, "approve", json!({"duration_minutes": 30})).await;
    let first = approved["expires_at"].as_i64().unwrap();
    s.clock.advance_secs(20 * 60);
    let ext: Value = extend(15).await.unwrap().json().await.unwrap();
    assert_eq!(ext["kind"], "extension");
    assert_eq!(ext["state"], "pending");
    let (st, _) = decide(
        &s,
        &api,
        ext["id"].as_str().unwrap(),
        "approve",
        json!({"duration_minutes": 15}),
    )
    .await;
    assert_eq!(st, 200);
    let v: Value = s
        .client()
        .get(format!(
            "{}/api/v1/tenants/acme/requests?state=approved",
            s.base
        ))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        session["expires_at"].as_i64().unwrap(),
        first + 15 * 60_000,
        "the deadline moved by 15 minutes, no gap"
    );
    // The agent receives a grant with the new deadline.
    let did = hourglass::ids::DeviceId::parse(&d.id).unwrap();
    let t = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    let scope = hourglass::authz::system_scope(t.id);
    let grants: Vec<Value> = s
        .ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, did, 10))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.kind.as_str() == "grant_admin")
        .map(|c| serde_json::from_str(&c.args).unwrap())
        .collect();
    assert_eq!(
        grants[0]["expires_at"].as_i64().unwrap(),
        first + 15 * 60_000
    );
    assert_eq!(
        grants[0]["session"]["request_id"],
        id.as_str(),
        "the extension's grant names the session it extends"
    );
    s.stop().await;
}

/// Endpoint users are listed per tenant and can be linked to a user of that tenant; a linked
/// person cannot approve the account's requests. A user of another tenant cannot be linked.
#[actix_web::test]
async fn endpoint_users_are_listed_and_a_linked_person_cannot_approve() {
    let s = TestServer::start().await;
    let (acme, _, mut admin) = crate::agent::tenant_and_admin(&s).await;
    let p = crate::people::admin_principal(&s).await;
    let msp = s
        .ctx()
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    let (_, secret, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &msp,
        service::devices::NewToken { hours: 24, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let d = Device::enroll(&s, &secret).await;
    let (st, r) = d.ask("carol", 30, "printer driver").await;
    assert_eq!(st, 201, "{r}");
    let rid = r["id"].as_str().unwrap().to_string();

    let page = admin
        .get("/t/nikpot-it/endpoint-users")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<code>carol</code>") && page.contains("W11-REQ"),
        "{page}"
    );
    let i = page.find("/t/nikpot-it/endpoint-users/eu-").unwrap();
    let link = page[i..i + page[i..].find('"').unwrap()].to_string();

    // A user of another tenant: refused, nothing linked.
    let other = service::users::create(
        s.ctx(),
        &p,
        &acme,
        service::users::NewUser {
            first_name: "Ann".into(),
            last_name: "A".into(),
            email: "ann@acme.com".into(),
            username: String::new(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let before = authz_fails(&s).await;
    let r = admin
        .post(&link, &[("user_id", &other.user.id.to_string())])
        .await;
    assert_eq!(r.status(), 404, "a foreign user id is hidden");
    assert_eq!(authz_fails(&s).await, before + 1, "and audited");

    let r = admin
        .post(&link, &[("user_id", &p.user_id.to_string())])
        .await;
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    let page = admin
        .get("/t/nikpot-it/endpoint-users")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("selected>nik@nikpot.com"), "{page}");

    let token = api_token(&s).await;
    let approve = format!("/api/v1/tenants/nikpot-it/requests/{rid}/approve");
    let (st, e) = crate::logins::api(&s, &token, "POST", &approve, json!({})).await;
    assert_eq!(st, 403, "linked to the approver: {e}");
    assert!(
        e["message"].as_str().unwrap().contains("own request"),
        "{e}"
    );
    // The linked person cannot unlink themselves to approve it after all (JIT-01).
    let r = admin.post(&link, &[("user_id", "")]).await;
    assert_eq!(r.status(), 403);
    let (st, _) = crate::logins::api(&s, &token, "POST", &approve, json!({})).await;
    assert_eq!(st, 403, "still their own request");
}

/// Approving in the portal asks for a fresh TOTP code when the last one is older than five
/// minutes; after the step-up the same approval goes through.
#[actix_web::test]
async fn a_portal_approval_needs_a_fresh_code_after_five_minutes() {
    let s = TestServer::start().await;
    let (mut admin, secret) = crate::people::setup(&s).await;
    let p = crate::people::admin_principal(&s).await;
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
    let (_, enroll_token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 24, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let d = Device::enroll(&s, &enroll_token).await;
    let (_, r) = d.ask("bob", 30, "update the printer driver").await;
    let rid = r["id"].as_str().unwrap().to_string();

    s.clock.advance_secs(6 * 60);
    let approve = format!("/t/acme/requests/{rid}/approve");
    let r = admin.post(&approve, &[("duration_minutes", "45")]).await;
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    // A page in the portal layout (navigation, CSRF token) whose form re-sends the approval,
    // with the typed duration kept, to the same URL with the code.
    assert!(body.contains("nav class=\"side\""), "{body}");
    assert!(
        body.contains(&format!("action=\"{approve}\""))
            && body.contains("name=\"duration_minutes\" value=\"45\"")
            && body.contains("name=\"step_up_code\"")
            && body.contains("name=\"csrf_token\""),
        "a step-up form: {body}"
    );
    let token = api_token(&s).await;
    let state = |token: String| {
        let s = &s;
        async move {
            let (_, v) = crate::logins::api(
                s,
                &token,
                "GET",
                "/api/v1/tenants/acme/requests",
                Value::Null,
            )
            .await;
            v["requests"][0].clone()
        }
    };
    assert_eq!(
        state(token.clone()).await["state"],
        "pending",
        "nothing decided without the code"
    );

    // A wrong code: the same prompt again, with what was typed, nothing decided.
    let r = admin
        .post(
            &approve,
            &[("duration_minutes", "45"), ("step_up_code", "000000")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("That code did not work")
            && body.contains("name=\"duration_minutes\" value=\"45\""),
        "{body}"
    );
    assert_eq!(state(token.clone()).await["state"], "pending");

    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    let r = admin
        .post(
            &approve,
            &[("duration_minutes", "45"), ("step_up_code", code.as_str())],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let v = state(token.clone()).await;
    assert_eq!(v["state"], "approved");
    assert_eq!(v["minutes_approved"], 45, "{v}");

    // The same code again (a replayed form) is refused and changes nothing more.
    let r = admin
        .post(
            &format!("/t/acme/requests/{rid}/revoke"),
            &[("confirm", "yes"), ("step_up_code", code.as_str())],
        )
        .await;
    assert_eq!(r.status(), 422, "a used code does not count twice");
    assert_eq!(state(token).await["state"], "approved");
}

/// Several people on one workstation: under sudo, `status` and `end-session` act on the
/// caller's own request, never the machine's last one, and `--user` cannot name another;
/// root itself may name whom it means (and without a name gets the machine's last).
#[actix_web::test]
async fn status_and_end_session_are_the_callers_own_on_a_shared_workstation() {
    let s = TestServer::start().await;
    let (_t, token, _admin) = tenant_and_admin(&s).await;
    let mut ws = enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    std::fs::write(
        root.join("etc/passwd"),
        std::fs::read_to_string(root.join("etc/passwd")).unwrap()
            + "alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
    )
    .unwrap();
    ws.start();
    let args = ws.args();
    let agent = |sudo_user: &str, cmd: &[&str]| {
        let out = hourglass()
            .env("SUDO_USER", sudo_user)
            .arg("agent")
            .args(cmd)
            .args(&args)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    let (ok, out) = agent(
        "alice",
        &["request-admin", "--minutes", "30", "--reason", "printer"],
    );
    assert!(ok, "{out}");
    // Bob asks last: the machine's last request is his.
    let (ok, out) = agent(
        "bob",
        &["request-admin", "--minutes", "15", "--reason", "scanner"],
    );
    assert!(ok, "{out}");
    let api = api_token(&s).await;
    let pending: Value = s
        .client()
        .get(s.url("/api/v1/tenants/acme/requests?state=pending"))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_of = |who: &str| {
        pending["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["account"] == who)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (alice, bob) = (id_of("alice"), id_of("bob"));

    let (ok, out) = agent("alice", &["status"]);
    assert!(ok && out.contains(&alice) && !out.contains(&bob), "{out}");
    let (ok, out) = agent("alice", &["status", "--user", "bob"]);
    assert!(!ok && out.contains("you are alice"), "{out}");
    // Alice ends hers: approve it first so there is a session to end.
    let (st, v) = decide(&s, &api, &alice, "approve", json!({"duration_minutes": 10})).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        eventually(15, || sudoers(&root).contains(&"alice".to_string())).await,
        "alice was granted"
    );
    let (ok, out) = agent("alice", &["end-session"]);
    assert!(ok, "{out}");
    assert!(
        eventually(15, || !sudoers(&root).contains(&"alice".to_string())).await,
        "alice's session ended on the workstation"
    );
    // Bob's request is untouched and still his.
    let (ok, out) = agent("bob", &["status"]);
    assert!(
        ok && out.contains(&bob) && out.contains("waiting for approval"),
        "{out}"
    );
    // Root itself: by name, or the machine's last.
    let (ok, out) = agent("", &["status", "--user", "alice"]);
    assert!(ok && out.contains(&alice), "{out}");
    let (ok, out) = agent("", &["status"]);
    assert!(ok && out.contains(&bob), "{out}");
    ws.kill();
}
