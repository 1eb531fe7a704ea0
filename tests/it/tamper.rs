//! Tamper evidence: a workstation that stops checking in while holding a technician login, or
//! whose agent reports another version, raises an alert — audited, sent to the webhooks that
//! hear it, a badge on the device — and checking in again clears the silence alert. One that
//! holds nothing may stay silent.

use serde_json::{Value, json};

use hourglass::service;

use crate::agent::{enroll, tenant_and_admin};
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
    let (acme, token, mut admin) = tenant_and_admin(&s).await;
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
    ws.kill();

    // Another agent version on the same device credentials: alerted, not cleared by polling.
    let st: Value = ws.state_json();
    let r = s
        .client()
        .post(format!("{}/agent/v1/poll", s.base))
        .header("x-device-id", st["device_id"].as_str().unwrap())
        .bearer_auth(st["device_secret"].as_str().unwrap())
        .json(&json!({"agent_version": "9.9.9-patched", "admin_members": [], "last_seq": 0, "wait_secs": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    assert_eq!(audited(&s, "agent_version_changed").await, 1);
    let events = delivered_events(&s, acme.id).await;
    assert!(
        events.contains(&"device.agent_changed".to_string()),
        "{events:?}"
    );
    let page = device_page(&mut admin, ws.device).await;
    assert!(page.contains("agent version changed"), "{page}");
}
