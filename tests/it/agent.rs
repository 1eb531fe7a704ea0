//! The real agent process against the real server, managing a throw-away root with the real
//! shadow tools (useradd, usermod, gpasswd, chpasswd): never this machine's own accounts.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use hourglass::authz::{TenantScope, system_scope};
use hourglass::ids::DeviceId;
use hourglass::model::commands::Action;
use hourglass::service;

use crate::people::{admin_principal, setup};
use crate::support::*;

/// A minimal system root: root and sudo exist, nothing else.
pub fn throwaway_root() -> tempfile::TempDir {
    let r = tempfile::tempdir().unwrap();
    let p = r.path();
    std::fs::create_dir_all(p.join("etc")).unwrap();
    std::fs::create_dir_all(p.join("home")).unwrap();
    std::fs::write(
        p.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(
        p.join("etc/shadow"),
        "root:*:19000:0:99999:7:::\nalice:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::fs::write(
        p.join("etc/group"),
        "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n",
    )
    .unwrap();
    std::fs::write(
        p.join("etc/gshadow"),
        "root:*::\nsudo:*::alice\nalice:!::\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in ["etc/shadow", "etc/gshadow"] {
        std::fs::set_permissions(p.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    r
}

pub fn sudoers(root: &Path) -> Vec<String> {
    let g = std::fs::read_to_string(root.join("etc/group")).unwrap();
    g.lines()
        .find(|l| l.starts_with("sudo:"))
        .map(|l| {
            l.split(':')
                .nth(3)
                .unwrap_or("")
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `cond` for up to `secs` seconds (real processes: no clock to move).
/// Waits up to `secs` for `cond`, failing the test with `what` it waited for.
pub async fn wait_until(secs: u64, what: &str, cond: impl FnMut() -> bool) {
    assert!(eventually(secs, cond).await, "waited {secs} s for {what}");
}

pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 20 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

pub struct Workstation {
    pub root: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub device: DeviceId,
    pub agent: Option<Child>,
}

impl Workstation {
    pub fn args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state.path().display().to_string(),
            "--root".into(),
            self.root.path().display().to_string(),
        ]
    }
    pub fn start(&mut self) {
        let child = hourglass()
            .args(["agent", "run"])
            .args(self.args())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn state_json(&self) -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.state.path().join("state.json")).unwrap(),
        )
        .unwrap()
    }
}

impl Drop for Workstation {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A customer tenant "acme" and an enrollment token's secret for it.
pub async fn tenant_with_token(s: &TestServer) -> (hourglass::model::tenants::Tenant, String) {
    let (t, token, _) = tenant_and_admin(s).await;
    (t, token)
}

/// The MSP with its signed-in admin (portal client), tenant `acme` and an enrollment token.
pub async fn tenant_and_admin(
    s: &TestServer,
) -> (
    hourglass::model::tenants::Tenant,
    String,
    crate::people::Http,
) {
    let (t, token, admin, _) = tenant_and_admin_with_code(s).await;
    (t, token, admin)
}

/// `tenant_and_admin`, keeping the admin's authenticator secret for step-up codes.
pub async fn tenant_and_admin_with_code(
    s: &TestServer,
) -> (
    hourglass::model::tenants::Tenant,
    String,
    crate::people::Http,
    Vec<u8>,
) {
    let (admin, totp) = setup(s).await;
    let p = admin_principal(s).await;
    let o = Default::default();
    let t = service::tenants::create(
        s.ctx(),
        &p,
        service::tenants::NewTenant {
            name: "Acme".into(),
            slug: "acme".into(),
        },
        &o,
    )
    .await
    .unwrap();
    let (_, secret, line) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 24, uses: 5 },
        &s.base,
        &o,
    )
    .await
    .unwrap();
    for line in [&line.linux, &line.windows] {
        assert!(
            line.contains(&s.fingerprint) && line.contains(&secret) && line.contains(&s.base),
            "{line}"
        );
    }
    assert!(
        line.windows
            .starts_with("msiexec /i hourglass-agent.msi /qn SERVER=")
    );
    (t, secret, admin, totp)
}

pub fn enroll(s: &TestServer, token: &str) -> Workstation {
    enroll_in(s, token, throwaway_root())
}

/// `enroll` into a root the test prepared (say, with more administrators to be found).
pub fn enroll_in(s: &TestServer, token: &str, root: tempfile::TempDir) -> Workstation {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("agent");
    let out = hourglass()
        .args([
            "agent",
            "enroll",
            "--server",
            &s.base,
            "--token",
            token,
            "--fingerprint",
            &s.fingerprint,
        ])
        .args([
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("state.json")).unwrap())
            .unwrap();
    let device = DeviceId::parse(v["device_id"].as_str().unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(state_dir.join("state.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Keep the state under the temp dir but point at the agent subdirectory.
    let ws = Workstation {
        root,
        state,
        device,
        agent: None,
    };
    std::fs::rename(&state_dir, ws.state.path().join("tmp-agent")).unwrap();
    for e in std::fs::read_dir(ws.state.path().join("tmp-agent")).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), ws.state.path().join(e.file_name())).unwrap();
    }
    ws
}

async fn command_state(
    s: &TestServer,
    scope: TenantScope,
    device: DeviceId,
) -> Vec<(String, String)> {
    s.ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, device, 50))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind.as_str().to_string(), c.state.as_str().to_string()))
        .collect()
}

#[actix_web::test]
async fn enroll_then_ensure_grant_and_revoke_in_a_throwaway_root() {
    let mut s = TestServer::start().await;
    let (t, token) = tenant_with_token(&s).await;
    let mut ws = enroll(&s, &token);
    ws.start();
    let scope = system_scope(t.id);
    let root: PathBuf = ws.root.path().to_path_buf();

    service::commands::queue(
        s.ctx(),
        &scope,
        ws.device,
        Action::EnsureAccount {
            account: "msp-nik".into(),
            password: "pw-one-3489".into(),
            admin: false,
            version: None,
        },
    )
    .await
    .unwrap();
    let expires = s.clock.now().plus_secs(3600).millis();
    let started = std::time::Instant::now();
    service::commands::queue(
        s.ctx(),
        &scope,
        ws.device,
        Action::GrantAdmin {
            account: "msp-nik".into(),
            expires_at: expires,
            session: None,
        },
    )
    .await
    .unwrap();
    assert!(
        eventually(15, || sudoers(&root).contains(&"msp-nik".to_string())).await,
        "granted in the root's /etc/group"
    );
    println!("queued → in /etc/group: {:?}", started.elapsed());
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("msp-nik:"), "account created: {passwd}");
    assert!(
        std::fs::read_to_string(root.join("etc/shadow"))
            .unwrap()
            .contains("msp-nik:$6$"),
        "password set with SHA-512-crypt"
    );

    service::commands::queue(
        s.ctx(),
        &scope,
        ws.device,
        Action::RevokeAdmin {
            account: "msp-nik".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        eventually(15, || !sudoers(&root).contains(&"msp-nik".to_string())).await,
        "revoked"
    );
    assert!(
        sudoers(&root).contains(&"alice".to_string()),
        "the baseline administrator is left alone"
    );

    // Acknowledged: every command done.
    let mut done = false;
    for _ in 0..100 {
        let st = command_state(&s, scope, ws.device).await;
        if st.len() == 3 && st.iter().all(|(_, state)| state == "done") {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "{:?}", command_state(&s, scope, ws.device).await);

    // Replay: the appliance delivers the captured grant again (as a restored old database
    // would: the row is changed while it is stopped, so it starts without remembering that
    // nothing was queued). The agent re-acknowledges it without running it: msp-nik stays out.
    let device = ws.device;
    let grant = s
        .ctx()
        .db
        .read(move |r| hourglass::store::commands::recent(r, &scope, device, 10))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.kind.as_str() == "grant_admin")
        .unwrap();
    s.stop().await;
    let db = rusqlite::Connection::open(s.data_dir().join("hourglass.db")).unwrap();
    db.execute(
        "UPDATE commands SET state = 'queued', acked_at = NULL WHERE id = ?1",
        [grant.id.to_string()],
    )
    .unwrap();
    drop(db);
    s.restart().await;
    let gid = grant.id;
    let mut reacked = false;
    // The agent finds the appliance again on its back-off (1 s, then 2 s, …).
    for _ in 0..600 {
        let c = s
            .ctx()
            .db
            .read(move |r| hourglass::store::commands::for_device(r, device, gid))
            .await
            .unwrap()
            .unwrap();
        if c.state.as_str() == "done" {
            reacked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reacked, "the re-sent command is acknowledged again");
    // The agent acknowledges only after deciding: had it run the command again, the account
    // would be in the group by now.
    assert!(
        !sudoers(&root).contains(&"msp-nik".to_string()),
        "and not run again"
    );

    // The password traveled to the agent but is stored only sealed (CRY-04).
    let db = std::fs::read(s.data_dir().join("hourglass.db")).unwrap();
    let wal = std::fs::read(s.data_dir().join("hourglass.db-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(11).any(|w| w == b"pw-one-3489"),
        "a plaintext password in the database"
    );

    // An intruder added to sudo is removed again and reported (PPAM).
    let out = std::process::Command::new("gpasswd")
        .args(["--root", root.to_str().unwrap(), "--add", "root", "sudo"])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_until(
        10,
        "!sudoers(&root).contains(&\"root\".to_string())",
        || !sudoers(&root).contains(&"root".to_string()),
    )
    .await;
    let ppam = || {
        s.ctx()
            .db
            .read_blocking(|r| hourglass::store::audit::count_event(r, "ppam_blocked"))
            .unwrap()
    };
    let mut seen = 0;
    for _ in 0..100 {
        seen = ppam();
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1, "the PPAM event reached the audit log");
    ws.kill();
    s.stop().await;
}

pub async fn device_events(
    s: &TestServer,
    t: hourglass::ids::TenantId,
    d: DeviceId,
    kind: &str,
) -> usize {
    let scope = system_scope(t);
    let kind = kind.to_string();
    s.ctx()
        .db
        .read(move |r| hourglass::store::commands::recent_events(r, &scope, d, 1000))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// AGT-05/06: with the appliance down, the agent revokes at the deadline on its own; the
/// event waits on disk through an agent restart and arrives exactly once when it is back.
#[actix_web::test]
async fn offline_expiry_and_events_that_survive_a_restart() {
    let mut s = TestServer::start().await;
    s.follow_real_time();
    let (t, token) = tenant_with_token(&s).await;
    let mut ws = enroll(&s, &token);
    ws.start();
    let scope = system_scope(t.id);
    let root = ws.root.path().to_path_buf();
    service::commands::queue(
        s.ctx(),
        &scope,
        ws.device,
        Action::EnsureAccount {
            account: "msp-nik".into(),
            password: "pw-2".into(),
            admin: false,
            version: None,
        },
    )
    .await
    .unwrap();
    let expires = s.clock.now().plus_secs(6).millis();
    service::commands::queue(
        s.ctx(),
        &scope,
        ws.device,
        Action::GrantAdmin {
            account: "msp-nik".into(),
            expires_at: expires,
            session: None,
        },
    )
    .await
    .unwrap();
    wait_until(
        15,
        "sudoers(&root).contains(&\"msp-nik\".to_string())",
        || sudoers(&root).contains(&"msp-nik".to_string()),
    )
    .await;
    assert!(
        eventually(10, || ws.state_json()["grants"]
            .as_array()
            .is_some_and(|g| g.len() == 1))
        .await,
        "the grant is persisted"
    );

    s.stop().await;
    // The agent restarts mid-grant, with the appliance unreachable: the deadline survives.
    ws.kill();
    assert!(
        sudoers(&root).contains(&"msp-nik".to_string()),
        "still granted before the deadline"
    );
    ws.start();
    assert!(
        eventually(15, || !sudoers(&root).contains(&"msp-nik".to_string())).await,
        "revoked with the appliance down"
    );
    let actions = || {
        std::fs::read_to_string(root.join("var/log/hourglass-agent/actions.log"))
            .unwrap_or_default()
    };
    assert!(
        eventually(5, || actions().contains("logoff msp-nik")).await,
        "logged off at expiry: {}",
        actions()
    );
    let queued =
        || std::fs::read_to_string(ws.state.path().join("events.jsonl")).unwrap_or_default();
    assert!(
        eventually(5, || queued().contains("grant_expired")).await,
        "queued on disk: {}",
        queued()
    );

    s.restart().await;
    let mut uploaded = 0;
    for _ in 0..400 {
        uploaded = device_events(&s, t.id, ws.device, "grant_expired").await;
        if uploaded > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(uploaded, 1, "uploaded after the appliance came back");
    // The queue is empty now: nothing is sent twice.
    assert!(
        eventually(10, || std::fs::read_to_string(
            ws.state.path().join("events.jsonl")
        )
        .unwrap_or_default()
        .is_empty())
        .await
    );
    assert_eq!(
        device_events(&s, t.id, ws.device, "grant_expired").await,
        1,
        "exactly once"
    );
    assert_eq!(device_events(&s, t.id, ws.device, "grant_started").await, 1);
    ws.kill();
    s.stop().await;
}

/// AGT-02: a retired device's secret stops working at once; the agent stops with a clear line.
#[actix_web::test]
async fn a_retired_device_is_refused_at_its_next_poll() {
    let mut s = TestServer::start().await;
    let (t, token) = tenant_with_token(&s).await;
    let mut ws = enroll(&s, &token);
    ws.start();
    let p = admin_principal(&s).await;
    let mut last_seen = None;
    for _ in 0..100 {
        service::devices::flush_heartbeats(s.ctx()).await.unwrap();
        let d = service::devices::get(s.ctx(), &p, &t, ws.device)
            .await
            .unwrap();
        if !d.admin_members.is_empty() {
            last_seen = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = last_seen.expect("the heartbeat reached the database");
    assert_eq!(d.admin_members, vec!["alice".to_string()]);
    assert!(service::devices::is_online(s.ctx(), &d, s.clock.now()));
    service::devices::retire(s.ctx(), &p, &t, ws.device, &Default::default())
        .await
        .unwrap();
    let mut child = ws.agent.take().unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap() {
            status = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("the agent stops");
    assert!(!status.success());
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("no longer recognises this device"), "{err}");
    s.stop().await;
}

/// Bad input on the agent API: clear JSON errors, never a 500, and nothing half-written.
#[actix_web::test]
async fn the_agent_api_refuses_bad_input_clearly() {
    let mut s = TestServer::start().await;
    let (t, token) = tenant_with_token(&s).await;
    let c = s.client();
    let url = |p: &str| format!("{}/agent/v1{p}", s.base);
    let enroll = |tok: &str| serde_json::json!({"token": tok, "hostname": "W11-A", "os": "linux", "os_version": "12", "agent_version": "0.1.0"});

    let r = c
        .post(url("/enroll"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "validation");
    let mut extra = enroll(&token);
    extra["tenant"] = "globex".into();
    assert_eq!(
        c.post(url("/enroll"))
            .json(&extra)
            .send()
            .await
            .unwrap()
            .status(),
        422,
        "unknown fields are refused"
    );
    let r = c
        .post(url("/enroll"))
        .json(&enroll("hge_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "unauthenticated"
    );
    let fails = s
        .ctx()
        .db
        .read_blocking(|r| hourglass::store::audit::count_event(r, "device_enroll_fail"))
        .unwrap();
    assert_eq!(fails, 1, "audited");
    // Deeply nested JSON within the size limit: refused by the parser, no stack overflow.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let r = c
        .post(url("/enroll"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A real device: another tenant's command is not found, oversized batches are 413.
    let r = c
        .post(url("/enroll"))
        .json(&enroll(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let d: serde_json::Value = r.json().await.unwrap();
    let (id, secret) = (
        d["device_id"].as_str().unwrap().to_string(),
        d["device_secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(secret.len(), 43, "256-bit secret");
    let authed = |p: &str| {
        c.post(url(p))
            .header("x-device-id", &id)
            .bearer_auth(&secret)
    };
    let other = c
        .post(url("/enroll"))
        .json(&enroll(&token))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let other_id = DeviceId::parse(other["device_id"].as_str().unwrap()).unwrap();
    let cmd = service::commands::queue(
        s.ctx(),
        &system_scope(t.id),
        other_id,
        Action::Notify {
            message: "hi".into(),
        },
    )
    .await
    .unwrap();
    let r = authed(&format!("/commands/{}/ack", cmd.id))
        .json(&serde_json::json!({"result": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another device's command");
    let r = c.post(url("/poll")).header("x-device-id", other_id.to_string()).bearer_auth(&secret).json(&serde_json::json!({"agent_version": "x", "admin_members": [], "last_seq": 0, "wait_secs": 0})).send().await.unwrap();
    assert_eq!(r.status(), 401, "one device's secret with another's id");
    let big: Vec<_> = (0..3000).map(|i| serde_json::json!({"id": format!("e{i}"), "kind": "notice", "at": 1, "data": {"pad": "x".repeat(700)}})).collect();
    // The server may answer 413 before the whole body is written; the client then sees a
    // broken pipe instead. Nothing is stored either way; at least one answer must be a 413.
    let mut saw_413 = false;
    for _ in 0..5 {
        if let Ok(r) = authed("/events")
            .json(&serde_json::json!({"events": big}))
            .send()
            .await
        {
            assert_eq!(r.status(), 413, "a 2 MiB batch");
            saw_413 = true;
            break;
        }
    }
    assert!(saw_413, "a 2 MiB batch is answered 413");
    let r = authed("/poll").json(&serde_json::json!({"agent_version": "x", "admin_members": [], "last_seq": 0, "wait_secs": 0, "tenant": "globex"})).send().await.unwrap();
    assert_eq!(r.status(), 422, "a device cannot name a tenant");
    let batch = serde_json::json!({"events": [{"id": "a1", "kind": "ppam", "at": 5, "data": {}}, {"id": "a1", "kind": "ppam", "at": 5, "data": {}}]});
    let r: serde_json::Value = authed("/events")
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "deduplicated by id"
    );

    // A revoked token enrolls nothing.
    let p = admin_principal(&s).await;
    let (tok, revoked, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 1, uses: 5 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    service::devices::revoke_token(s.ctx(), &p, &t, &tok.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        c.post(url("/enroll"))
            .json(&enroll(&revoked))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // A used-up token too (one use left of a one-use token after enrolling once).
    let (_, once, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 1, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.post(url("/enroll"))
            .json(&enroll(&once))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        c.post(url("/enroll"))
            .json(&enroll(&once))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // An expired token: the enrollment clock moved past its 24 hours.
    s.clock.advance_secs(24 * 3600 + 1);
    assert_eq!(
        c.post(url("/enroll"))
            .json(&enroll(&token))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The document describes every agent route.
    let doc: serde_json::Value = c
        .get(url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path) in hourglass::agent_api::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the agent OpenAPI file"
        );
    }
    s.stop().await;
}

#[actix_web::test]
async fn enrollment_with_a_wrong_fingerprint_or_no_server_stops_with_one_line() {
    let mut s = TestServer::start().await;
    let (_, token) = tenant_with_token(&s).await;
    let state = tempfile::tempdir().unwrap();
    let root = throwaway_root();
    let run = |server: &str, fp: &str| {
        hourglass()
            .args([
                "agent",
                "enroll",
                "--server",
                server,
                "--token",
                &token,
                "--fingerprint",
                fp,
            ])
            .args([
                "--state-dir",
                state.path().join("a").to_str().unwrap(),
                "--root",
                root.path().to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = run(&s.base, &wrong);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not match the --fingerprint given; nothing was sent"),
        "{}",
        text(&out)
    );
    assert_eq!(text(&out).trim().lines().count(), 1);
    let devices = s
        .ctx()
        .db
        .read_blocking(|r| hourglass::store::audit::count_event(r, "device_enrolled"))
        .unwrap();
    assert_eq!(devices, 0);
    assert!(!state.path().join("a/state.json").exists());
    let out = run("https://127.0.0.1:9", &s.fingerprint);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot reach https://127.0.0.1:9"),
        "{}",
        text(&out)
    );
    let out = run(&s.base, "sha256:nothex");
    assert!(text(&out).contains("--fingerprint"), "{}", text(&out));
    s.stop().await;
}

/// Graceful shutdown: an in-flight request (a held long-poll) is answered, not dropped, and
/// the stop does not wait out the 25-second hold.
#[actix_web::test]
async fn shutdown_answers_a_held_long_poll() {
    let mut s = TestServer::start().await;
    let (_, token) = tenant_with_token(&s).await;
    let c = s.client();
    let body = serde_json::json!({"token": token, "hostname": "W", "os": "linux", "os_version": "1", "agent_version": "0"});
    let d: serde_json::Value = c
        .post(format!("{}/agent/v1/enroll", s.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        d["device_id"].as_str().unwrap().to_string(),
        d["device_secret"].as_str().unwrap().to_string(),
    );
    let url = format!("{}/agent/v1/poll", s.base);
    let poll = tokio::spawn(async move {
        let r = c
            .post(url)
            .header("x-device-id", id)
            .bearer_auth(secret)
            .json(&serde_json::json!({"agent_version": "0", "admin_members": [], "last_seq": 0, "wait_secs": 25}))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    // Wait until the server is holding it (a positive signal: the long-poll is registered).
    let device = DeviceId::parse(d["device_id"].as_str().unwrap()).unwrap();
    wait_until(10, "s.ctx().wake.is_connected(device)", || {
        s.ctx().wake.is_connected(device)
    })
    .await;
    assert!(!poll.is_finished(), "the poll is held");
    let started = std::time::Instant::now();
    s.stop().await;
    assert_eq!(poll.await.unwrap(), 200, "the in-flight poll was answered");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
