//! Tamper evidence: a workstation that stops checking in while holding a technician login, or
//! whose agent reports another version, raises an alert — audited, sent to the webhooks that
//! hear it, a badge on the device — and checking in again clears the silence alert. One that
//! holds nothing may stay silent.

use serde_json::{Value, json};

use hourglass::service;

use crate::agent::{enroll, tenant_and_admin_with_code};
use crate::logins::{api, wait_state};
use crate::support::*;

async fn audited(s: &TestServer, event: &'static str) -> usize {
    audit_details(s, event).await.len()
}

/// A workstation's page in the portal, as the admin sees it.
async fn device_page(admin: &mut crate::people::Http, device: hourglass::ids::DeviceId) -> String {
    let p = admin.get(&format!("/t/acme/devices/{device}")).await;
    p.text().await.unwrap()
}

async fn delivered_events(s: &TestServer, t: hourglass::ids::TenantId) -> Vec<String> {
    s.ctx()
        .db
        .read(move |r| {
            hourglass::store::webhooks::deliveries(r, &hourglass::authz::system_scope(t), 100)
        })
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event)
        .collect()
}

#[actix_web::test]
async fn a_silent_workstation_holding_a_login_raises_an_alert_until_it_is_back() {
    let s = TestServer::start_with(|c| c.webhooks.allow_loopback = true).await;
    let (acme, token, mut admin, totp) = tenant_and_admin_with_code(&s).await;
    let form = [
        ("name", "SOC"),
        ("url", "https://127.0.0.1:9/hook"),
        ("format", "generic"),
        ("event", "device.silent"),
        ("event", "device.agent_changed"),
        ("event", "device.agent_restarted"),
    ];
    assert_eq!(admin.post("/t/acme/webhooks", &form).await.status(), 200);
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    // Its estimate of the appliance's clock runs a minute ahead (skew the agent cannot see
    // at start): its first start must still not read as a restart during the login below.
    let mut st = ws.state_json();
    st["clock_offset_ms"] = json!(st["clock_offset_ms"].as_i64().unwrap() + 60_000);
    std::fs::write(ws.state.path().join("state.json"), st.to_string()).unwrap();
    ws.start();
    // A second workstation that holds nothing.
    let idle = crate::requests::Device::enroll_as(&s, &token, "IDLE-01").await;
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (st, l) = api(&s, &nik, "POST", &path, json!({})).await;
    assert_eq!(st, 201, "{l}");
    wait_state(&s, &nik, l["id"].as_str().unwrap(), "active").await;
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();

    // A local administrator stops the agent; the tenant allows 10 minutes of silence.
    ws.kill();
    s.clock.advance_secs(9 * 60);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(audited(&s, "device_silent").await, 0, "not yet");
    s.clock.advance_secs(2 * 60);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(
        audited(&s, "device_silent").await,
        1,
        "one alert, for the workstation holding a login"
    );
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(audited(&s, "device_silent").await, 1, "raised once");
    assert_eq!(delivered_events(&s, acme.id).await, vec!["device.silent"]);
    let page = device_page(&mut admin, ws.device).await;
    assert!(
        page.contains("Tamper alert: this workstation stopped checking in"),
        "{page}"
    );
    let list = admin.get("/t/acme/devices").await.text().await.unwrap();
    assert_eq!(
        list.matches("tamper-badge").count(),
        1,
        "only the silent one: {list}"
    );
    let _ = idle;

    // Back: the agent polls again and the next sweep clears the alert, audited.
    ws.start();
    for _ in 0..200 {
        service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
        if audited(&s, "device_back").await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        audited(&s, "device_back").await,
        1,
        "the workstation is back"
    );
    // Its agent started again while the login was open: alerted too (its first start, before
    // the login, was not).
    for _ in 0..100 {
        if audited(&s, "agent_restarted").await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(audited(&s, "agent_restarted").await, 1);
    let events = delivered_events(&s, acme.id).await;
    assert!(
        events.contains(&"device.agent_restarted".to_string()),
        "{events:?}"
    );
    let page = device_page(&mut admin, ws.device).await;
    assert!(
        !page.contains("stopped checking in"),
        "the silence alert is cleared: {page}"
    );
    assert!(
        page.contains("agent restarted while holding rights"),
        "{page}"
    );
    // The agent reports the SHA-256 of its own binary.
    let binary = hourglass::crypto::sha256_file(env!("CARGO_BIN_EXE_hourglass").as_ref()).unwrap();
    let mut stored = String::new();
    for _ in 0..200 {
        // Its held long-poll answers, so the next poll (with the hash) is not 25 s away.
        s.ctx().wake.wake(ws.device);
        service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
        stored = stored_hash(&s, ws.device).await;
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored, binary);
    ws.kill();

    // Same device credentials and version, another binary: alerted, not cleared by polling.
    let st: Value = ws.state_json();
    let poll = |version: &str, hash: &str| {
        s.client()
            .post(format!("{}/agent/v1/poll", s.base))
            .header("x-device-id", st["device_id"].as_str().unwrap())
            .bearer_auth(st["device_secret"].as_str().unwrap())
            .json(
                &json!({"agent_version": version, "agent_hash": hash, "admin_members": [],
                "last_seq": 0, "wait_secs": 0}),
            )
            .send()
    };
    let other = "0".repeat(64);
    let r = poll(hourglass::proto::AGENT_VERSION, &other).await.unwrap();
    assert_eq!(r.status(), 200);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    let changed = audit_details(&s, "agent_version_changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["old_hash"], binary.as_str());
    assert_eq!(changed[0]["new_hash"], other.as_str());
    let events = delivered_events(&s, acme.id).await;
    assert!(
        events.contains(&"device.agent_changed".to_string()),
        "{events:?}"
    );
    let page = device_page(&mut admin, ws.device).await;
    assert!(page.contains("agent binary or version changed"), "{page}");
    // A report without a hash (an older agent) says nothing about the binary.
    poll(hourglass::proto::AGENT_VERSION, "").await.unwrap();
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(stored_hash(&s, ws.device).await, other, "kept");

    // Another version: alerted too.
    let r = poll("9.9.9-patched", &other).await.unwrap();
    assert_eq!(r.status(), 200);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    let changed = audit_details(&s, "agent_version_changed").await;
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[0]["new"], "9.9.9-patched", "{changed:?}");

    // Looked into: an admin dismisses the alert (asked to confirm); it stays in the log.
    let dismiss = format!("/t/acme/devices/{}/alert/dismiss", ws.device);
    assert_eq!(admin.post(&dismiss, &[]).await.status(), 422, "unconfirmed");
    // Hours have passed since the admin's last code: silencing evidence asks for a fresh one.
    let stale = admin.post(&dismiss, &[("confirm", "yes")]).await;
    assert_eq!(stale.status(), 401, "step-up first");
    assert!(stale.text().await.unwrap().contains("step_up_code"));
    let page = device_page(&mut admin, ws.device).await;
    assert!(page.contains("Tamper alert"), "still open: {page}");
    let code = hourglass::crypto::totp::code_at(&totp, s.clock.now()).unwrap();
    let r = admin
        .post(
            &dismiss,
            &[("confirm", "yes"), ("step_up_code", code.as_str())],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Alert dismissed"));
    let page = device_page(&mut admin, ws.device).await;
    assert!(!page.contains("Tamper alert"), "{page}");
    let d = audit_details(&s, "device_alert_dismissed").await;
    assert_eq!(d, vec![json!({"alert": "agent_changed"})]);
    let again = admin.post(&dismiss, &[("confirm", "yes")]).await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("no open alert"));
}

async fn stored_hash(s: &TestServer, device: hourglass::ids::DeviceId) -> String {
    s.ctx()
        .db
        .read(move |r| hourglass::store::devices::by_id(r, device))
        .await
        .unwrap()
        .unwrap()
        .agent_hash
}
