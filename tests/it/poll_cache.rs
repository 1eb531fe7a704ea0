//! The poll path answers from memory (who is polling, is anything queued, which password
//! versions are current), and that memory is exact: every change that matters reaches the
//! next poll, and a restart, which starts it empty, loses nothing.

use serde_json::{Value, json};

use hourglass::authz::system_scope;
use hourglass::ids::DeviceId;
use hourglass::model::commands::Action;
use hourglass::service;

use crate::agent::tenant_and_admin;
use crate::requests::Device;
use crate::support::*;

/// One short poll with `secret`: (status, commands delivered).
async fn poll(s: &TestServer, d: &Device, secret: &str) -> (u16, Vec<Value>) {
    let r = d
        .c
        .post(format!("{}/agent/v1/poll", s.base))
        .header("x-device-id", &d.id)
        .bearer_auth(secret)
        .json(&json!({"agent_version": "0", "admin_members": [], "last_seq": 0, "wait_secs": 0}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    let commands = body["commands"].as_array().cloned().unwrap_or_default();
    (status, commands)
}

fn id_of(d: &Device) -> DeviceId {
    DeviceId::parse(&d.id).unwrap()
}

/// Queues a revocation for the device, as a grant's end would, and wakes it.
async fn queue_revoke(s: &TestServer, t: hourglass::ids::TenantId, device: DeviceId) {
    let (crypto, now) = (s.ctx().crypto.clone(), s.clock.now());
    s.ctx()
        .db
        .write(move |tx| {
            let action = Action::RevokeAdmin {
                account: "alice".into(),
            };
            service::commands::enqueue(
                tx,
                &crypto,
                &system_scope(t),
                device,
                &action,
                3_600_000,
                now,
            )
        })
        .await
        .unwrap();
    s.ctx().wake.wake(device);
}

#[actix_web::test]
async fn a_retired_device_is_refused_at_its_next_poll() {
    let s = TestServer::start().await;
    let (acme, token, _admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    assert_eq!(poll(&s, &d, &d.secret).await.0, 200);
    assert!(
        s.ctx().db.hot().cred(id_of(&d)).is_some(),
        "its credential is remembered after a poll"
    );
    let p = crate::people::admin_principal(&s).await;
    service::devices::retire(s.ctx(), &p, &acme, id_of(&d), &Default::default())
        .await
        .unwrap();
    assert_eq!(poll(&s, &d, &d.secret).await.0, 401, "refused at once");
    assert_eq!(audit_details(&s, "device_auth_fail").await.len(), 1);
}

#[actix_web::test]
async fn a_rotated_secret_works_at_once_and_the_old_one_stops_with_its_first_use() {
    let s = TestServer::start().await;
    let (_acme, token, _admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    assert_eq!(
        poll(&s, &d, &d.secret).await.0,
        200,
        "the old secret, remembered"
    );
    let r =
        d.c.post(format!("{}/agent/v1/secret", s.base))
            .header("x-device-id", &d.id)
            .bearer_auth(&d.secret)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let new = r.json::<Value>().await.unwrap()["device_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, d.secret);
    // Until the agent uses the new one, an answer lost on the way locks nothing out.
    assert_eq!(poll(&s, &d, &d.secret).await.0, 200);
    assert_eq!(
        poll(&s, &d, &new).await.0,
        200,
        "the new secret works at once"
    );
    assert_eq!(
        poll(&s, &d, &d.secret).await.0,
        401,
        "the old one no longer does"
    );
    assert_eq!(poll(&s, &d, &new).await.0, 200);
    assert_eq!(audit_details(&s, "device_secret_issued").await.len(), 1);
    assert_eq!(audit_details(&s, "device_secret_rotated").await.len(), 1);
    // Only its hash is kept.
    for f in ["hourglass.db", "hourglass.db-wal"] {
        let bytes = std::fs::read(s.data_dir().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(new.len()).any(|w| w == new.as_bytes()),
            "{f}"
        );
    }
}

#[actix_web::test]
async fn a_command_for_a_device_marked_idle_arrives_at_its_next_poll() {
    let s = TestServer::start().await;
    let (acme, token, _admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    assert!(poll(&s, &d, &d.secret).await.1.is_empty());
    assert_eq!(
        s.ctx().db.hot().pending(id_of(&d)),
        Some(false),
        "known to have nothing queued"
    );
    // A quiet poll reads nothing: three in a row leave the read count where it was (the
    // scheduler may read meanwhile, so one clean try of five is enough; a poll that read
    // would spoil every try).
    let mut clean = false;
    for _ in 0..5 {
        let before = s.ctx().db.reads();
        for _ in 0..3 {
            assert_eq!(poll(&s, &d, &d.secret).await.0, 200);
        }
        if s.ctx().db.reads() == before {
            clean = true;
            break;
        }
    }
    assert!(clean, "quiet polls read the database");
    queue_revoke(&s, acme.id, id_of(&d)).await;
    let (status, commands) = poll(&s, &d, &d.secret).await;
    assert_eq!(status, 200);
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0]["kind"], "revoke_admin");
    // Delivered again until answered; once answered, nothing more.
    assert_eq!(poll(&s, &d, &d.secret).await.1.len(), 1);
    let id = commands[0]["id"].as_str().unwrap();
    let r =
        d.c.post(format!("{}/agent/v1/commands/{id}/ack", s.base))
            .header("x-device-id", &d.id)
            .bearer_auth(&d.secret)
            .json(&json!({"result": "done", "details": ""}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(poll(&s, &d, &d.secret).await.1.is_empty());
    assert_eq!(s.ctx().db.hot().pending(id_of(&d)), Some(false));
}

#[actix_web::test]
async fn commands_queued_before_a_restart_are_delivered_after_it() {
    let mut s = TestServer::start().await;
    let (acme, token, _admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    assert!(poll(&s, &d, &d.secret).await.1.is_empty());
    queue_revoke(&s, acme.id, id_of(&d)).await;
    s.stop().await;
    s.restart().await;
    assert_eq!(s.ctx().db.hot().sizes(), (0, 0, 0), "memory starts empty");
    let (status, commands) = poll(&s, &d, &d.secret).await;
    assert_eq!(status, 200);
    assert_eq!(commands.len(), 1, "{commands:?}");
}

/// The real agent replaces a secret that is due (here: one from before rotation existed),
/// keeps working with the new one, and forgets the old one once the appliance took the new.
#[actix_web::test]
async fn the_agent_replaces_its_secret_when_it_is_due() {
    let s = TestServer::start().await;
    let (acme, token, _admin) = tenant_and_admin(&s).await;
    let mut ws = crate::agent::enroll(&s, &token);
    let mut st = ws.state_json();
    let old = st["device_secret"].as_str().unwrap().to_string();
    assert!(
        st["secret_issued_at"].as_i64().unwrap() > 0,
        "fresh at enrollment"
    );
    st["secret_issued_at"] = json!(0);
    std::fs::write(ws.state.path().join("state.json"), st.to_string()).unwrap();
    ws.start();
    let replaced = crate::agent::eventually(20, || {
        let st = ws.state_json();
        st["device_secret"] != old.as_str() && st["previous_secret"].is_null()
    })
    .await;
    assert!(replaced, "{}", ws.state_json());
    assert_eq!(audit_details(&s, "device_secret_rotated").await.len(), 1);
    // Still served with the new secret: a queued order reaches it and is answered.
    queue_revoke(&s, acme.id, ws.device).await;
    let mut answered = 0;
    for _ in 0..200 {
        for e in ["command_done", "command_failed", "command_refused"] {
            answered += audit_details(&s, e).await.len();
        }
        if answered > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(answered > 0, "the order was answered");
    ws.kill();
}

/// `hourglass agent simulate` gives every virtual agent its own TLS connection by default
/// (as a real fleet connects), or shares one HTTP/2 connection among several when asked.
#[actix_web::test]
async fn the_simulator_opens_a_connection_per_agent_unless_told_to_share() {
    let s = TestServer::start().await;
    let (acme, _, _admin) = crate::agent::tenant_and_admin(&s).await;
    let p = crate::people::admin_principal(&s).await;
    let new = service::devices::NewToken {
        hours: 1,
        uses: 100,
    };
    let (_, token, _) =
        service::devices::create_token(s.ctx(), &p, &acme, new, &s.base, &Default::default())
            .await
            .unwrap();
    let port = s
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let established = || {
        let out = std::process::Command::new("ss")
            .args([
                "-Htn",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    for (share, low, high) in [("1", 24, 40), ("12", 2, 5)] {
        let sim = std::process::Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .args(["agent", "simulate", "--server", &s.base, "--token", &token])
            .args([
                "--fingerprint",
                &s.fingerprint,
                "--count",
                "24",
                "--hold",
                "25",
            ])
            .args(["--seconds", "4", "--share-connection", share])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut held = 0;
        for _ in 0..100 {
            held = metric(&s, "hourglass_long_polls_held").await as usize;
            if held >= 24 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(held >= 24, "every virtual agent holds a long-poll: {held}");
        // The test's own clients (the admin's, the /metrics reader) hold a connection or two.
        let n = established();
        assert!((low..=high).contains(&n), "share {share}: {n} connections");
        let out = sim.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("errors    0 (connect 0)"), "{text}");
    }
}

/// `hourglass_poll_work_seconds` on /metrics is a poll's own work, not its hold: a poll held
/// 2 s adds an observation and far less than the hold to the sum. (Not a speed check: the
/// bound is the hold itself, which a measurement that leaves it out never comes near.)
#[actix_web::test]
async fn the_poll_work_metric_leaves_out_the_hold() {
    let s = TestServer::start().await;
    let (_acme, token, _admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    let count = "hourglass_poll_work_seconds_count";
    let sum = "hourglass_poll_work_seconds_sum";
    let (count0, sum0) = (metric(&s, count).await, metric(&s, sum).await);
    let r = d
        .c
        .post(format!("{}/agent/v1/poll", s.base))
        .header("x-device-id", &d.id)
        .bearer_auth(&d.secret)
        .json(&json!({"agent_version": "0", "admin_members": [], "last_seq": 0, "wait_secs": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (count1, sum1) = (metric(&s, count).await, metric(&s, sum).await);
    assert!(
        count1 > count0,
        "the held poll was counted ({count0} → {count1})"
    );
    assert!(
        sum1 - sum0 < 1.0,
        "the 2 s hold is not the poll's work: the sum grew by {:.3} s",
        sum1 - sum0
    );
}

/// Heartbeats are written a chunk per transaction (so 100,000 polling devices do not hold the
/// writer for seconds): every chunk lands, not only the first.
#[actix_web::test]
async fn heartbeats_of_more_devices_than_one_chunk_all_reach_the_database() {
    use hourglass::model::devices::Heartbeat;
    let s = TestServer::start().await;
    let (acme, _token, _admin) = tenant_and_admin(&s).await;
    let n = 1_100;
    let new = service::devices::NewToken {
        hours: 1,
        uses: n as u32,
    };
    let (token, _) =
        service::devices::create_token_for_slug(s.ctx(), &acme.slug.to_string(), new, "https://x")
            .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let req = hourglass::proto::EnrollRequest {
            token: token.clone(),
            hostname: format!("hb-{i}"),
            os: "linux".into(),
            os_version: "test".into(),
            agent_version: "0".into(),
        };
        let e = service::devices::enroll(s.ctx(), req, &Default::default())
            .await
            .unwrap();
        ids.push(e.device_id);
    }
    for id in &ids {
        let beat = Heartbeat {
            at: s.clock.now(),
            agent_version: "0".into(),
            agent_hash: String::new(),
            admins: vec!["hb-admin".into()],
        };
        s.ctx().beats.record(*id, beat);
    }
    let written = service::devices::flush_heartbeats(s.ctx()).await.unwrap();
    assert_eq!(written, n as u64);
    let p = crate::people::admin_principal(&s).await;
    let listed = service::devices::list(s.ctx(), &p, &acme).await.unwrap();
    let seen = listed
        .iter()
        .filter(|d| d.admin_members == ["hb-admin"])
        .count();
    assert_eq!(seen, n, "every device's heartbeat was written");
}
