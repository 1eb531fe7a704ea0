//! What an admin and a workstation wait for while the fleet is connected: approve → the
//! agent's acknowledged grant, and `decide` (as a service call and over HTTPS with a real
//! device's credentials).

use std::time::{Duration, Instant};

use hourglass::agent::simulate;
use hourglass::authz::system_scope;
use hourglass::service;

use crate::common::sorted;

/// JIT approvals: each device's user asks for 30 minutes; an admin approves each, 5 ms
/// apart; latency from the start of the approval to the agent's ack of its `grant_admin`.
pub fn approvals(
    sys: &tokio::runtime::Runtime,
    ctx: &service::Ctx,
    devices: &[hourglass::model::devices::Device],
) -> Vec<f64> {
    let (user, t) = sys
        .block_on(ctx.db.read(|r| {
            let c = hourglass::store::users::credentials_by_email(r, "bench@msp.test")?.unwrap();
            Ok((c.user.id, hourglass::store::tenants::msp(r)?.unwrap()))
        }))
        .unwrap();
    // The MSP admin (never enrolled here, so built directly) with a fresh MFA.
    let p = hourglass::authz::Principal {
        user_id: user,
        tenant_id: t.id,
        tenant_kind: t.kind,
        builtin: vec![hourglass::model::roles::BuiltinRole::MspAdmin],
        custom: Default::default(),
        all_tenants: true,
        assigned: Vec::new(),
        mfa_at: Some(ctx.clock.now()),
        api_token: None,
    };
    let mut started = Vec::new();
    for d in devices {
        let ask = service::requests::Ask {
            account: simulate::SIM_USER.into(),
            minutes: 30,
            reason: "benchmark".into(),
            ticket: None,
            kind: "admin".into(),
            app: None,
        };
        let r = sys
            .block_on(service::requests::create(ctx, d, ask, &Default::default()))
            .unwrap();
        let at = ctx.clock.now();
        sys.block_on(service::requests::approve(
            ctx,
            &p,
            &t,
            r.id,
            None,
            hourglass::model::requests::Grant::Once,
            &Default::default(),
        ))
        .unwrap();
        started.push((d.id, at));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(5));
    let scope = system_scope(t.id);
    let mut out = Vec::new();
    for (d, at) in started {
        let cmds = sys
            .block_on(
                ctx.db
                    .read(move |r| hourglass::store::commands::recent(r, &scope, d, 10)),
            )
            .unwrap();
        if let Some(a) = cmds
            .iter()
            .find(|c| {
                c.kind == hourglass::model::commands::CommandKind::GrantAdmin
                    && c.state == hourglass::model::commands::CommandState::Done
            })
            .and_then(|c| c.acked_at)
        {
            out.push((a.millis() - at.millis()) as f64);
        }
    }
    sorted(out)
}

/// Application decisions: 5,000 `decide` calls paced at 500/s against a 50-rule policy, each
/// timed as the service call (policy read, engine, audit entry written).
pub fn decisions(
    sys: &tokio::runtime::Runtime,
    ctx: &service::Ctx,
    d: &hourglass::model::devices::Device,
) -> Vec<f64> {
    use hourglass::model::policies::{Access, App, Policy, Rule, RuleKind, Span};
    let scope = system_scope(d.tenant_id);
    let now = ctx.clock.now();
    let mut rules: Vec<Rule> = (0..49)
        .map(|i| Rule {
            id: format!("r{i}"),
            kind: RuleKind::Path,
            value: format!("/opt/tool{i}/*"),
            deny: false,
        })
        .collect();
    rules.push(Rule {
        id: "deny-shell".into(),
        kind: RuleKind::Path,
        value: "/usr/bin/bash".into(),
        deny: true,
    });
    let policy = Policy {
        id: "bench-policy".into(),
        name: "Bench".into(),
        description: String::new(),
        enabled: true,
        devices: vec![],
        users: vec![],
        span: Span::Fixed {
            hours: 8,
            from: now.millis(),
        },
        access: Access::Specific,
        rules,
        once: false,
    };
    sys.block_on(ctx.db.write(move |tx| {
        hourglass::store::policies::put(tx, &scope, &policy, now)?;
        Ok(())
    }))
    .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    for i in 0..5000u32 {
        let due = start + Duration::from_millis(u64::from(i) * 2);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let req = service::policies::DecideRequest {
            user: "sim-user".into(),
            app: App {
                path: format!("/opt/tool{}/bin", i % 60),
                sha256: "ab".repeat(32),
                ..App::default()
            },
        };
        let t0 = Instant::now();
        sys.block_on(service::policies::decide(ctx, d, req, &Default::default()))
            .unwrap();
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    sorted(out)
}

/// `decide` as a workstation sees it: 5,000 calls paced at 500/s over HTTPS on one kept
/// connection, authenticated with a device id and secret enrolled like any other.
pub fn decide_https(
    sys: &tokio::runtime::Runtime,
    server: &str,
    token: &str,
    fp: &str,
) -> Vec<f64> {
    sys.block_on(async {
        let c = hourglass::agent::client::pinned_client(fp).unwrap();
        let o = crate::common::options(server, token, fp, 1, 0);
        // Retried: the connected fleet keeps the appliance busy.
        let mut e = simulate::enroll_one(&c, &o, 999_999).await;
        for _ in 0..5 {
            if e.is_ok() {
                break;
            }
            println!("  decide device: {:?}; retrying", e.as_ref().err());
            tokio::time::sleep(Duration::from_secs(2)).await;
            e = simulate::enroll_one(&c, &o, 999_999).await;
        }
        let e = e.unwrap();
        let start = Instant::now();
        let mut out = Vec::new();
        for i in 0..5000u32 {
            let due = start + Duration::from_millis(u64::from(i) * 2);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let body = serde_json::json!({
                "user": simulate::SIM_USER,
                "app": {"path": format!("/opt/tool{}/bin", i % 60), "sha256": "ab".repeat(32)},
            });
            let t0 = Instant::now();
            let r = c
                .post(format!("{server}/agent/v1/decide"))
                .header("x-device-id", e.device_id.to_string())
                .bearer_auth(&e.device_secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "decide answered {}", r.status());
            let _ = r.bytes().await.unwrap();
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        sorted(out)
    })
}

/// Queued → acknowledged: one `notify` for each device, 5 ms apart; latency from the
/// command row's `issued_at` to its `acked_at` (server clock). Returns (latencies, queued).
pub fn delivery(
    sys: &tokio::runtime::Runtime,
    ctx: &service::Ctx,
    devices: &[hourglass::model::devices::Device],
) -> (Vec<f64>, usize) {
    use hourglass::model::commands::Action;
    let mut ids = Vec::new();
    for d in devices {
        let scope = system_scope(d.tenant_id);
        let c = sys
            .block_on(service::commands::queue(
                ctx,
                &scope,
                d.id,
                Action::Notify {
                    message: "bench".into(),
                },
            ))
            .unwrap();
        ids.push((d.id, c.id));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(5));
    let mut out = Vec::new();
    for &(d, id) in &ids {
        if let Some(c) = sys
            .block_on(
                ctx.db
                    .read(move |r| hourglass::store::commands::for_device(r, d, id)),
            )
            .unwrap()
            && let Some(a) = c.acked_at
        {
            out.push((a.millis() - c.issued_at.millis()) as f64);
        }
    }
    (sorted(out), ids.len())
}
