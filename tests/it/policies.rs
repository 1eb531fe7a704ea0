//! Application elevation: policies reach the agent, `agent run-elevated` runs an allowed
//! program as root and refuses others, and the appliance and the agent decide alike.

use hourglass::model::policies::{Decision, Policy, cases};
use hourglass::service;
use serde_json::{Value, json};

use crate::agent::{enroll, eventually, tenant_and_admin};
use crate::logins::api;
use crate::support::*;

fn bundle_version(ws: &crate::agent::Workstation) -> i64 {
    ws.state_json()["policies"]["version"].as_i64().unwrap_or(0)
}

/// An allowed program runs as root and `101` is audited; a denied one does not run; one no
/// policy covers is refused with advice; a changed policy takes effect without a restart,
/// also from the agent's cache with the appliance down.
#[actix_web::test]
async fn allowed_programs_run_as_root_denied_ones_do_not() {
    let mut s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();

    // Bad input: clear 422s, nothing saved.
    for (body, field) in [
        (
            json!({"name": "x", "duration": "fixed", "hours": 8, "access": "specific",
            "rules": [{"kind": "hash", "value": "abc"}]}),
            "64 hexadecimal",
        ),
        (
            json!({"name": "x", "duration": "fixed", "hours": 8, "access": "specific",
            "rules": [{"kind": "clsid", "value": "nope"}]}),
            "GUID",
        ),
        (
            json!({"name": "x", "duration": "fixed", "hours": 8, "access": "specific",
            "rules": [{"kind": "path", "value": "bin/*"}]}),
            "absolute",
        ),
        (
            json!({"name": "x", "duration": "window", "from": "2026-11-23T10:00:00Z",
            "to": "2026-11-23T09:00:00Z", "access": "all"}),
            "end after",
        ),
        (
            json!({"name": " ", "duration": "fixed", "hours": 8, "access": "all"}),
            "name",
        ),
        (
            json!({"name": "x", "duration": "fixed", "hours": 8, "access": "specific"}),
            "allow rule",
        ),
    ] {
        let (st, e) = api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", body).await;
        assert_eq!(st, 422, "{e}");
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }
    let (_, v) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/policies",
        Value::Null,
    )
    .await;
    assert_eq!(v["policies"].as_array().unwrap().len(), 0, "nothing saved");

    let (st, p) = api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", json!({
        "name": "Diagnostics", "duration": "fixed", "hours": 8, "access": "specific", "users": ["bob"],
        "rules": [{"kind": "path", "value": "/usr/bin/id"}, {"kind": "path", "value": "/usr/bin/whoami", "deny": true}]
    })).await;
    assert_eq!(st, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    assert!(
        eventually(15, || bundle_version(&ws) == 1).await,
        "the bundle reaches the agent"
    );

    let elevated = |program: &[&str]| {
        hourglass()
            .args(["agent", "run-elevated", "--user", "bob"])
            .args(ws.args())
            .arg("--")
            .args(program)
            .output()
            .unwrap()
    };
    let out = elevated(&["id", "-u"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "ran as root"
    );
    let denied = elevated(&["whoami"]);
    assert!(!denied.status.success());
    assert!(denied.stdout.is_empty(), "did not run");
    assert!(
        text(&denied).contains("denied by policy"),
        "{}",
        text(&denied)
    );
    let ask = elevated(&["true"]);
    assert!(
        !ask.status.success() && text(&ask).contains("no application policy"),
        "{}",
        text(&ask)
    );

    // The decisions are audited under the policy, and the agent's 101 arrives.
    let count = |event: &'static str| {
        let s = &s;
        async move { audit_details(s, event).await.len() }
    };
    assert_eq!(count("elevation_allowed").await, 1);
    assert_eq!(count("elevation_denied").await, 1);
    assert_eq!(count("elevation_asked").await, 1);
    let mut seen = 0;
    for _ in 0..300 {
        seen = count("101").await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1, "elevate on demand (101) uploaded");

    // A change reaches the running agent; with the appliance down its cache decides the same.
    let (st, _) = api(&s, &nik, "PUT", &format!("/api/v1/tenants/acme/policies/{pid}"), json!({
        "name": "Diagnostics", "duration": "fixed", "hours": 8, "access": "specific", "users": ["bob"],
        "rules": [{"kind": "path", "value": "/usr/bin/id"}, {"kind": "path", "value": "/usr/bin/true"},
                  {"kind": "path", "value": "/usr/bin/whoami", "deny": true}]
    })).await;
    assert_eq!(st, 200);
    assert!(
        eventually(15, || bundle_version(&ws) == 2).await,
        "no restart needed"
    );
    s.stop().await;
    let offline = elevated(&["true"]);
    assert!(offline.status.success(), "{}", text(&offline));
    assert!(
        text(&offline).contains("cached policies"),
        "{}",
        text(&offline)
    );
    let still_denied = elevated(&["whoami"]);
    assert!(!still_denied.status.success() && still_denied.stdout.is_empty());
    ws.kill();
}

/// The shared case table, decided by the appliance over `/agent/v1/decide` and by the agent's
/// engine over the bundle it received: the same answers, and the expected ones.
#[actix_web::test]
async fn the_appliance_and_the_agent_decide_alike() {
    let mut s = TestServer::start().await;
    let (t, token, _) = tenant_and_admin(&s).await;
    let p = crate::people::admin_principal(&s).await;
    let d1 = crate::requests::Device::enroll(&s, &token).await;
    let d2 = crate::requests::Device::enroll(&s, &token).await;
    let real = |case_device: &str| {
        if case_device == "dev-1" {
            d1.id.clone()
        } else {
            d2.id.clone()
        }
    };
    let scope = hourglass::authz::system_scope(t.id);
    let now = s.clock.now();
    let policies: Vec<Policy> = cases::policies()
        .into_iter()
        .map(|mut p| {
            p.devices = p.devices.iter().map(|d| real(d)).collect();
            p
        })
        .collect();
    let stored = policies.clone();
    s.ctx()
        .db
        .write(move |tx| {
            for p in &stored {
                hourglass::store::policies::put(tx, &scope, p, now)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // A disabled policy saved through the service pushes the whole bundle.
    let input = serde_json::from_value(json!({"name": "zz off", "enabled": false, "duration": "fixed", "hours": 1, "access": "all"})).unwrap();
    service::policies::save(s.ctx(), &p, &t, None, input, &Default::default())
        .await
        .unwrap();

    // The agent's side: the bundle as the agent receives and applies it.
    let mut agent: hourglass::agent::state::State = serde_json::from_str(&format!(
        r#"{{"server":"x","fingerprint":"","device_id":"{}","device_secret":"","tenant":"acme","last_seq":0,
            "clock_offset_ms":0,"baseline_admins":[],"ordered_admins":[],"grants":[],"grant_times":[],"results":[]}}"#,
        d1.id
    ))
    .unwrap();
    let did = hourglass::ids::DeviceId::parse(&d1.id).unwrap();
    let cmd = s
        .ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, did, 10))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.kind.as_str() == "policy_update")
        .unwrap();
    let action = hourglass::model::commands::Action::parse(
        cmd.kind.as_str(),
        &serde_json::from_str(&cmd.args).unwrap(),
    )
    .unwrap();
    let proto_cmd = hourglass::proto::Command {
        id: cmd.id,
        device_id: did,
        tenant_id: t.id,
        seq: cmd.seq,
        issued_at: 0,
        not_after: i64::MAX,
        kind: cmd.kind.as_str().to_string(),
        args: serde_json::from_str(&cmd.args).unwrap(),
    };
    hourglass::agent::enforcer::apply(
        &hourglass::agent::os::MemoryOs::default(),
        &mut agent,
        &proto_cmd,
        &action,
        0,
    )
    .unwrap();
    let bundle = agent.policies.clone().unwrap().policies;

    for (case, device, user, app, at, want) in cases::table() {
        s.clock.set(hourglass::clock::Timestamp::from_millis(at));
        let dev = if device == "dev-1" { &d1 } else { &d2 };
        let r = dev
            .c
            .post(format!("{}/agent/v1/decide", dev.base))
            .header("x-device-id", &dev.id)
            .bearer_auth(&dev.secret)
            .json(&json!({"user": user, "app": app}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{case}");
        let server: Decision = r.json().await.unwrap();
        let local = hourglass::model::policies::decide(&bundle, &real(device), user, &app, at);
        assert_eq!(server, local, "{case}: appliance and agent differ");
        assert_eq!(cases::render(&server), want, "{case}");
    }

    // Bad input on the wire: huge attributes, a missing path.
    let big = json!({"user": "bob", "app": {"path": "/x".repeat(5000)}});
    let r =
        d1.c.post(format!("{}/agent/v1/decide", d1.base))
            .header("x-device-id", &d1.id)
            .bearer_auth(&d1.secret)
            .json(&big)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 422);
    s.stop().await;
}

/// The portal: the rule builder refuses malformed rules with the line or field, saves a good
/// policy, shows it with its audit tab, and "test a decision" names the deciding rule.
#[actix_web::test]
async fn the_portal_edits_tests_and_audits_policies() {
    let mut s = TestServer::start().await;
    let (_, _, mut admin) = tenant_and_admin(&s).await;
    for (rules, want) in [
        ("path", "line 1"),
        ("hash 1234", "64 hexadecimal"),
        ("sha1 abc", "Kind"),
        ("clsid {not-a-guid}", "GUID"),
    ] {
        let r = admin
            .post(
                "/t/acme/policies",
                &[
                    ("name", "Bad"),
                    ("duration", "fixed"),
                    ("hours", "8"),
                    ("access", "specific"),
                    ("rules", rules),
                ],
            )
            .await;
        assert_eq!(r.status(), 422, "{rules}");
        assert!(r.text().await.unwrap().contains(want), "{rules}");
    }
    let r = admin
        .post(
            "/t/acme/policies",
            &[
                ("name", "Network tools"),
                ("enabled", "true"),
                ("duration", "fixed"),
                ("hours", "8"),
                ("access", "specific"),
                ("users", "bob, carol"),
                ("rules", "path /usr/bin/wireshark\ndeny path /usr/bin/bash"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "a new policy opens on its own page");
    let list = admin.get("/t/acme/policies").await.text().await.unwrap();
    assert!(
        list.contains("Network tools") && list.contains("bob, carol"),
        "{list}"
    );
    let i = list.find("/t/acme/policies/pol-").unwrap();
    let url = list[i..i + list[i..].find('"').unwrap()].to_string();
    let page = admin.get(&url).await.text().await.unwrap();
    assert!(
        page.contains("policy_created") && page.contains("/usr/bin/wireshark"),
        "{page}"
    );

    let t = admin
        .post(
            "/t/acme/policies/test",
            &[("user", "bob"), ("path", "/usr/bin/wireshark")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("Allowed by policy") && t.contains("rule-1"),
        "{t}"
    );
    let t = admin
        .post(
            "/t/acme/policies/test",
            &[("user", "bob"), ("path", "/usr/bin/bash")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("Denied by policy") && t.contains("rule-2"),
        "{t}"
    );
    let t = admin
        .post(
            "/t/acme/policies/test",
            &[("user", "dave"), ("path", "/usr/bin/wireshark")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(t.contains("No policy allows it"), "another user: {t}");
    s.stop().await;
}

/// Runs `agent run-elevated` for `user` in the background (it may wait for a decision).
fn run_elevated(
    ws: &crate::agent::Workstation,
    user: &str,
    extra: &[&str],
    program: &[&str],
) -> std::process::Child {
    hourglass()
        .args(["agent", "run-elevated", "--user", user])
        .args(extra)
        .args(ws.args())
        .arg("--")
        .args(program)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn finished(c: std::process::Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.wait_with_output().unwrap())
        .await
        .unwrap()
}

async fn pending_app_request(s: &TestServer, token: &str, account: &str) -> Value {
    for _ in 0..300 {
        let (_, v) = api(
            s,
            token,
            "GET",
            "/api/v1/tenants/acme/requests?state=pending",
            Value::Null,
        )
        .await;
        if let Some(r) = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "application" && r["account"] == account)
        {
            return r.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no pending application request of {account}");
}

/// `ask` → an application elevation request → approved just once (a temporary hash rule for
/// that user on that device, gone when it runs out) or as a rule for the whole tenant (gone
/// when revoked); the waiting `run-elevated` then runs the program as root.
#[actix_web::test]
async fn an_ask_becomes_a_request_and_its_approval_a_rule() {
    let s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let id_sha = sha256_file(std::path::Path::new("/usr/bin/id"));

    // Bad input over the agent API: no program, no hash, a second ask for the same program.
    let raw = crate::requests::Device::enroll(&s, &token).await;
    let ask = |body: Value| {
        let raw = &raw;
        async move {
            let r = raw
                .c
                .post(format!("{}/agent/v1/requests", raw.base))
                .header("x-device-id", &raw.id)
                .bearer_auth(&raw.secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let base = json!({"account": "eve", "minutes": 30, "reason": "setup", "kind": "application"});
    let (st, e) = ask(base.clone()).await;
    assert_eq!(st, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("describes the program")
    );
    let mut no_hash = base.clone();
    no_hash["app"] = json!({"path": "/usr/bin/id", "sha256": "123"});
    let (st, e) = ask(no_hash).await;
    assert!(
        st == 422 && e["message"].as_str().unwrap().contains("SHA-256"),
        "{e}"
    );
    let mut good = base.clone();
    good["app"] = json!({"path": "/usr/bin/id", "sha256": id_sha});
    assert_eq!(ask(good.clone()).await.0, 201);
    let (st, e) = ask(good).await;
    assert!(
        st == 409 && e["message"].as_str().unwrap().contains("already asked"),
        "{e}"
    );

    // Bob asks and waits; approved once, the program runs as root.
    let bob = run_elevated(
        &ws,
        "bob",
        &[
            "--reason",
            "Vendor updater",
            "--minutes",
            "15",
            "--wait-minutes",
            "2",
        ],
        &["id", "-u"],
    );
    let r = pending_app_request(&s, &nik, "bob").await;
    assert_eq!(r["app"]["sha256"], id_sha.as_str(), "{r}");
    assert_eq!(r["app"]["path"], "/usr/bin/id");
    let rid = r["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tenants/acme/requests/{rid}/approve");
    let (st, e) = api(&s, &nik, "POST", &path, json!({"grant": "forever"})).await;
    assert!(
        st == 422 && e["message"].as_str().unwrap().contains("once, user"),
        "{e}"
    );
    let (st, v) = api(
        &s,
        &nik,
        "POST",
        &path,
        json!({"duration_minutes": 10, "grant": "once"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["grant"], "once");
    let temp = v["policy_id"].as_str().unwrap().to_string();
    let out = finished(bob).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "ran as root"
    );

    // "Just this request": the one run used the temporary rule up (deleted, audited, and
    // gone from the bundle), so a second run within the approved ten minutes asks again.
    let (st, _) = api(
        &s,
        &nik,
        "GET",
        &format!("/api/v1/tenants/acme/policies/{temp}"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 404, "the one-off rule is used up by its one run");
    let used = s
        .ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("policy_deleted".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert!(
        used.iter()
            .any(|(_, e)| e.target_id.as_deref() == Some(temp.as_str())
                && e.details.contains("used once")),
        "{used:?}"
    );
    let again = finished(run_elevated(
        &ws,
        "bob",
        &["--wait-minutes", "0"],
        &["id", "-u"],
    ))
    .await;
    assert!(
        !again.status.success() && again.stdout.is_empty(),
        "{}",
        text(&again)
    );
    // Carol, on the same machine, is not covered.
    let carol = finished(run_elevated(
        &ws,
        "carol",
        &["--wait-minutes", "0"],
        &["id", "-u"],
    ))
    .await;
    assert!(
        !carol.status.success() && carol.stdout.is_empty(),
        "{}",
        text(&carol)
    );

    // It runs out: the sweep expires the request; its rule is already gone.
    s.clock.advance_secs(11 * 60);
    service::requests::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();

    // Carol asks without waiting (exit 2: pending); approved as a rule for the whole tenant.
    let asked = finished(run_elevated(
        &ws,
        "carol",
        &["--reason", "Printer driver", "--wait-minutes", "0"],
        &["id", "-u"],
    ))
    .await;
    assert_eq!(asked.status.code(), Some(2), "{}", text(&asked));
    let r = pending_app_request(&s, &nik, "carol").await;
    let rid = r["id"].as_str().unwrap().to_string();
    // A technician may approve requests but not manage policies: no standing rule from them.
    let mut tech = crate::people::admin_principal(&s).await;
    tech.builtin = vec![hourglass::model::roles::BuiltinRole::Technician];
    tech.mfa_at = Some(s.clock.now());
    let acme = service::tenants::resolve(s.ctx(), &tech, "acme", &Default::default())
        .await
        .unwrap();
    let refused = service::requests::approve(
        s.ctx(),
        &tech,
        &acme,
        hourglass::ids::RequestId::parse(&rid).unwrap(),
        None,
        hourglass::model::requests::Grant::Tenant,
        &Default::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(hourglass::error::Error::Forbidden(_))),
        "{refused:?}"
    );
    let (st, v) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/requests/{rid}/approve"),
        json!({"grant": "tenant"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let rule = v["policy_id"].as_str().unwrap().to_string();
    let (_, p) = api(
        &s,
        &nik,
        "GET",
        &format!("/api/v1/tenants/acme/policies/{rule}"),
        Value::Null,
    )
    .await;
    let p: Policy = serde_json::from_value(p).unwrap();
    assert!(p.users.is_empty() && p.devices.is_empty(), "{p:?}");
    assert!(
        p.name.ends_with("for everyone") && p.name.starts_with(&format!("Request {rid}: ")),
        "names carry their request, so they stay unique: {}",
        p.name
    );
    let dave = finished(run_elevated(
        &ws,
        "dave",
        &["--wait-minutes", "0"],
        &["id", "-u"],
    ))
    .await;
    assert!(
        dave.status.success(),
        "the rule covers everyone: {}",
        text(&dave)
    );

    // Carol ending her request early gives up only her own approval, not the approver's rule.
    let device = s
        .ctx()
        .db
        .read_blocking(|r| hourglass::store::devices::credentials(r, ws.device))
        .unwrap()
        .unwrap()
        .device;
    service::requests::end_by_device(
        s.ctx(),
        &device,
        hourglass::ids::RequestId::parse(&rid).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let (st, _) = api(
        &s,
        &nik,
        "GET",
        &format!("/api/v1/tenants/acme/policies/{rule}"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "ending the request keeps the rule");

    // The request's own time runs out; the rule stays. Revoking the request takes it back.
    s.clock.advance_secs(31 * 60);
    service::requests::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
    let (st, _) = api(
        &s,
        &nik,
        "GET",
        &format!("/api/v1/tenants/acme/policies/{rule}"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "a rule outlives its request");

    // Audit: the policies were created and deleted with the request they came from.
    let events = |e: &'static str| {
        let s = &s;
        async move {
            s.ctx()
                .db
                .read(move |r| {
                    hourglass::store::audit::list(
                        r,
                        &hourglass::store::audit::Filter {
                            event: Some(e.into()),
                            limit: 100,
                            ..Default::default()
                        },
                    )
                })
                .await
                .unwrap()
        }
    };
    let created = events("policy_created").await;
    assert_eq!(created.len(), 2);
    assert!(
        created.iter().all(|(_, e)| e.actor_id.is_some()),
        "each names its approver"
    );
    let deleted = events("policy_deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].1.target_id.as_deref(), Some(temp.as_str()));
    ws.kill();
}

/// Approved in the portal as a rule for the device; revoking the request removes the rule it
/// created, and the agent learns it.
#[actix_web::test]
async fn revoking_an_application_request_takes_its_rule_back() {
    let s = TestServer::start().await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let asked = finished(run_elevated(
        &ws,
        "bob",
        &["--reason", "Driver", "--wait-minutes", "0"],
        &["id", "-u"],
    ))
    .await;
    assert_eq!(asked.status.code(), Some(2), "{}", text(&asked));
    let rid = pending_app_request(&s, &nik, "bob").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The portal queue shows what is asked and lets the approver choose the rule's reach.
    let queue = admin.get("/t/acme/requests").await.text().await.unwrap();
    assert!(
        queue.contains("Run <code>/usr/bin/id</code>")
            && queue.contains("Rule: everyone on this device"),
        "{queue}"
    );
    let r = admin
        .post(
            &format!("/t/acme/requests/{rid}/approve"),
            &[("duration_minutes", "15"), ("grant", "device")],
        )
        .await;
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    let (_, v) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/requests?state=approved",
        Value::Null,
    )
    .await;
    let r = &v["requests"][0];
    assert_eq!(r["grant"], "device", "{v}");
    let (_, p) = api(
        &s,
        &nik,
        "GET",
        &format!(
            "/api/v1/tenants/acme/policies/{}",
            r["policy_id"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    assert_eq!(p["devices"], json!([ws.device.to_string()]));
    assert_eq!(p["users"], json!([]));
    assert!(
        eventually(15, || bundle_version(&ws) == 1).await,
        "the rule reaches the agent"
    );
    // A device cannot ask in another device's name.
    let raw = crate::requests::Device::enroll(&s, &token).await;
    let r = raw
        .c
        .post(format!("{}/agent/v1/decide", raw.base))
        .header("x-device-id", ws.device.to_string())
        .bearer_auth(&raw.secret)
        .json(&json!({"user": "bob", "app": {"path": "/usr/bin/id"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, v) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/requests/{rid}/revoke"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "revoked");
    assert!(
        eventually(15, || bundle_version(&ws) == 2).await,
        "and so does its removal"
    );
    assert!(
        ws.state_json()["policies"]["policies"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        ws.state_json()
    );
    ws.kill();
}

async fn policy_names(s: &TestServer, token: &str) -> Vec<String> {
    let (_, v) = api(
        s,
        token,
        "GET",
        "/api/v1/tenants/acme/policies",
        Value::Null,
    )
    .await;
    let mut names: Vec<String> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Export, edit, import: a dry run answers the diff and writes nothing; applying creates,
/// changes and (replace) deletes by name in one step; a bad file is refused whole.
#[actix_web::test]
async fn policies_export_and_import_with_a_dry_run_diff() {
    let s = TestServer::start().await;
    let (_, _, mut admin) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    for body in [
        json!({"name": "Diagnostics", "duration": "fixed", "hours": 8, "access": "specific",
               "rules": [{"kind": "path", "value": "/usr/bin/id"}]}),
        json!({"name": "Old", "duration": "fixed", "hours": 8, "access": "all"}),
    ] {
        assert_eq!(
            api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", body)
                .await
                .0,
            201
        );
    }
    let (_, before) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/policies",
        Value::Null,
    )
    .await;
    let diag_id = before["policies"][0]["id"].clone();

    let (st, mut file) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/policies/export",
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(file["format"], "hourglass-policies/1");
    assert_eq!(file["policies"].as_array().unwrap().len(), 2, "{file}");
    assert_eq!(file["policies"][0]["hours"], 8);

    // Edit: Diagnostics gets 4 hours and a second rule, "New" appears, "Old" is left out.
    file["policies"][0]["hours"] = json!(4);
    file["policies"][0]["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "vendor", "value": "Debian"}));
    file["policies"][1] = json!({"name": "New", "duration": "window", "from": "2026-11-23T08:00:00Z",
        "to": "2026-11-24T08:00:00Z", "access": "all"});
    let import = "/api/v1/tenants/acme/policies/import";
    let (st, plan) = api(
        &s,
        &nik,
        "POST",
        &format!("{import}?dry_run=true&mode=replace"),
        file.clone(),
    )
    .await;
    assert_eq!(st, 200, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["create"], json!(["New"]));
    assert_eq!(
        plan["update"],
        json!([["Diagnostics", ["duration", "rules"]]])
    );
    assert_eq!(plan["delete"], json!(["Old"]));
    assert_eq!(
        policy_names(&s, &nik).await,
        ["Diagnostics", "Old"],
        "a dry run writes nothing"
    );

    // A bad file is refused whole, naming the policy.
    let mut bad = file.clone();
    bad["policies"][1]["rules"] = json!([{"kind": "hash", "value": "xyz"}]);
    bad["policies"][1]["access"] = json!("specific");
    let (st, e) = api(&s, &nik, "POST", &format!("{import}?mode=replace"), bad).await;
    assert_eq!(st, 422, "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("policies[1]") && msg.contains("New") && msg.contains("64 hexadecimal"),
        "{msg}"
    );
    let mut twice = file.clone();
    twice["policies"][1]["name"] = json!("Diagnostics");
    let (st, e) = api(&s, &nik, "POST", import, twice).await;
    assert!(
        st == 422 && e["message"].as_str().unwrap().contains("twice"),
        "{e}"
    );
    let (st, e) = api(
        &s,
        &nik,
        "POST",
        import,
        json!({"format": "other/1", "policies": []}),
    )
    .await;
    assert!(
        st == 422
            && e["message"]
                .as_str()
                .unwrap()
                .contains("hourglass-policies/1"),
        "{e}"
    );
    let (st, _) = api(
        &s,
        &nik,
        "POST",
        &format!("{import}?mode=everything"),
        file.clone(),
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(
        policy_names(&s, &nik).await,
        ["Diagnostics", "Old"],
        "nothing written half-way"
    );

    // Applied: one step, the id of a changed policy kept, audited once.
    let (st, plan) = api(
        &s,
        &nik,
        "POST",
        &format!("{import}?mode=replace"),
        file.clone(),
    )
    .await;
    assert_eq!(st, 200, "{plan}");
    assert_eq!(plan["dry_run"], false);
    assert_eq!(policy_names(&s, &nik).await, ["Diagnostics", "New"]);
    let (_, after) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/policies",
        Value::Null,
    )
    .await;
    let diag = &after["policies"][0];
    assert_eq!(diag["id"], diag_id);
    assert_eq!(diag["span"]["hours"], 4);
    assert_eq!(diag["rules"].as_array().unwrap().len(), 2);
    // The same file again changes nothing.
    let (_, plan) = api(
        &s,
        &nik,
        "POST",
        &format!("{import}?mode=replace"),
        file.clone(),
    )
    .await;
    assert_eq!(plan["unchanged"].as_array().unwrap().len(), 2, "{plan}");
    assert!(
        plan["create"].as_array().unwrap().is_empty()
            && plan["update"].as_array().unwrap().is_empty()
    );

    // The portal: a preview with an explicit apply, and a download.
    let doc = serde_json::to_string(&json!({"format": "hourglass-policies/1",
        "policies": [{"name": "Portal", "duration": "fixed", "hours": 2, "access": "all"}]}))
    .unwrap();
    let r = admin
        .post(
            "/t/acme/policies/import",
            &[("document", doc.as_str()), ("dry_run", "yes")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Create <strong>Portal</strong>") && page.contains("Apply import"),
        "{page}"
    );
    assert_eq!(policy_names(&s, &nik).await, ["Diagnostics", "New"]);
    let r = admin
        .post(
            "/t/acme/policies/import",
            &[("document", "{not json"), ("dry_run", "yes")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = admin
        .post(
            "/t/acme/policies/import",
            &[("document", doc.as_str()), ("mode", "merge")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        policy_names(&s, &nik).await,
        ["Diagnostics", "New", "Portal"]
    );
    let r = admin.get("/t/acme/policies/export").await;
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("policies-acme.json")
    );
    let exported: Value = r.json().await.unwrap();
    assert_eq!(exported["policies"].as_array().unwrap().len(), 3);
    let events = s
        .ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("policies_imported".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        2,
        "applied imports are audited; dry runs and no-ops are not"
    );
}

/// Policy windows are read in the tenant's time zone (Europe/Berlin: UTC+1 in November), and
/// shown and exported with its offset; a zone that does not exist is refused.
#[actix_web::test]
async fn windows_follow_the_tenant_time_zone() {
    let s = TestServer::start().await;
    let (_, _, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let (st, e) = api(
        &s,
        &nik,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"time_zone": "Mars/Olympus"}),
    )
    .await;
    assert!(
        st == 422 && e["message"].as_str().unwrap().contains("IANA"),
        "{e}"
    );
    let (st, t) = api(
        &s,
        &nik,
        "PATCH",
        "/api/v1/tenants/acme",
        json!({"time_zone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["settings"]["time_zone"], "Europe/Berlin");

    let (st, p) = api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", json!({
        "name": "Office hours", "duration": "window", "from": "2026-11-23T08:00", "to": "2026-11-23 18:00",
        "access": "all"})).await;
    assert_eq!(st, 201, "{p}");
    let h = 3_600_000;
    assert_eq!(
        p["span"]["from"],
        T0.millis() + 7 * h,
        "08:00 in Berlin is 07:00 UTC"
    );
    assert_eq!(p["span"]["to"], T0.millis() + 17 * h);
    let test = || async {
        api(
            &s,
            &nik,
            "POST",
            "/api/v1/tenants/acme/policies/test",
            json!({"user": "bob", "app": {"path": "/usr/bin/id"}}),
        )
        .await
        .1["decision"]
            .clone()
    };
    s.clock.advance_secs(6 * 3600 + 1800); // 07:30 in Berlin
    assert_eq!(test().await, "ask");
    s.clock.advance_secs(3600); // 08:30 in Berlin
    assert_eq!(test().await, "allow");
    s.clock.advance_secs(10 * 3600); // 18:30 in Berlin
    assert_eq!(test().await, "ask");

    let (_, file) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/policies/export",
        Value::Null,
    )
    .await;
    assert_eq!(
        file["policies"][0]["from"], "2026-11-23T08:00:00+01:00",
        "{file}"
    );
    let (st, e) = api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", json!({
        "name": "Bad", "duration": "window", "from": "23.11.2026", "to": "2026-11-24T08:00", "access": "all"})).await;
    assert!(
        st == 422 && e["message"].as_str().unwrap().contains("Europe/Berlin"),
        "{e}"
    );
}

/// During a JIT admin session, launching a program elevated needs no policy and raises the
/// passive token event (106) and elevate on demand (101), stamped with the session's
/// RequestIdentifier and TicketIdentifier.
#[actix_web::test]
async fn in_a_jit_session_elevation_raises_106_and_101_with_the_request() {
    let s = TestServer::start().await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    // Bob is a local user of the workstation.
    let passwd = ws.root.path().join("etc/passwd");
    let users = std::fs::read_to_string(&passwd).unwrap();
    std::fs::write(&passwd, users + "bob:x:1001:1001::/home/bob:/bin/bash\n").unwrap();
    ws.start();
    let out = hourglass()
        .args(["agent", "request-admin", "--user", "bob", "--minutes", "30"])
        .args(["--reason", "Install a driver", "--ticket", "INC-106"])
        .args(ws.args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (_, v) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/requests?state=pending",
        Value::Null,
    )
    .await;
    let rid = v["requests"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/requests/{rid}/approve"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    let root = ws.root.path().to_path_buf();
    assert!(
        eventually(15, || crate::agent::sudoers(&root)
            .contains(&"bob".to_string()))
        .await,
        "the session started"
    );
    let run = hourglass()
        .args(["agent", "run-elevated", "--user", "bob"])
        .args(ws.args())
        .args(["--", "id", "-u"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("administrator session"),
        "{}",
        text(&run)
    );
    let stamped = |event: &'static str| {
        let s = &s;
        async move {
            audit_entries(s, event)
                .await
                .into_iter()
                .map(|e| (e.request_identifier, e.ticket_identifier))
                .collect::<Vec<_>>()
        }
    };
    let mut got = Vec::new();
    for _ in 0..300 {
        got = stamped("106").await;
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let want = (Some(rid.clone()), Some("INC-106".to_string()));
    assert_eq!(got, vec![want.clone()], "passive token (106)");
    assert_eq!(stamped("101").await, vec![want], "elevate on demand (101)");
    ws.kill();
}
