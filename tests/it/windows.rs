//! The Windows agent (`hourglass.exe`, cross-built for x86_64-pc-windows-gnu) under Wine
//! against a real appliance on loopback. Wine's own account calls are stubs, so the agent
//! runs its Windows back end over the in-memory SAM kept in `fake-sam.json`
//! (`--os-backend fake-sam`): what runs here for real is the binary, its TLS pinning, the
//! protocol, the on-disk queue and the grant deadlines on the agent's own clock.
//! Without Wine or the cross-built binary the test is skipped with a message, unless
//! HOURGLASS_REQUIRE_WINE=1 (set by CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hourglass::authz::system_scope;
use hourglass::ids::DeviceId;
use hourglass::model::commands::Action;
use hourglass::service;

use crate::agent::{device_events, eventually, tenant_with_token};
use crate::support::*;

fn exe() -> Option<PathBuf> {
    let exe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-pc-windows-gnu/debug/hourglass.exe");
    let wine = Command::new("wine").arg("--version").output().is_ok();
    if exe.exists() && wine {
        prepare_prefix();
        return Some(exe);
    }
    let why = format!(
        "wine installed: {wine}; {} exists: {}",
        exe.display(),
        exe.exists()
    );
    if std::env::var("HOURGLASS_REQUIRE_WINE").is_ok_and(|v| v == "1") {
        panic!("HOURGLASS_REQUIRE_WINE=1 but {why} (cargo build --target x86_64-pc-windows-gnu)");
    }
    eprintln!("SKIPPED Windows agent test: {why}");
    None
}

fn prefix() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wine-prefix")
}

/// Creates the test's Wine prefix once, with the `bcryptprimitives.dll` stand-in Wine 8
/// lacks (tests/wine/bcryptprimitives.c), and starts Wine's server and services with no
/// standard streams: started from a test's `output()`, they would inherit its pipes and keep
/// it waiting for an end of file that never comes.
fn prepare_prefix() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let quiet = |c: &mut Command| {
            wine_env(c)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
        };
        // Kept running for a minute after its last client.
        let _ = wine_env(&mut Command::new("wineserver"))
            .arg("-p60")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        assert!(
            quiet(Command::new("wineboot").arg("--init")).success(),
            "wineboot failed"
        );
        let dll = prefix().join("drive_c/windows/system32/bcryptprimitives.dll");
        if dll.exists() {
            return;
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
        let out = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(&dll)
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32")
            .output()
            .expect("x86_64-w64-mingw32-gcc (apt-get install gcc-mingw-w64-x86-64)");
        assert!(out.status.success(), "{}", text(&out));
    });
}

fn wine_env(c: &mut Command) -> &mut Command {
    // Quiet, headless, no Mono/Gecko prompts, one prefix for the whole run.
    c.env("WINEPREFIX", prefix())
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
}

/// A Unix path as the Windows program sees it (Wine maps Z: to /).
fn win(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

fn wine(exe: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("wine");
    c.arg(exe).args(args);
    wine_env(&mut c);
    c
}

fn fake_sam(state: &Path) -> serde_json::Value {
    std::fs::read_to_string(state.join("fake-sam.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn admins(state: &Path) -> Vec<String> {
    fake_sam(state)["admins"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

/// The agent's own lines, appended across restarts (shown when an assertion fails).
fn log(state: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.with_extension("log"))
        .unwrap()
}

/// `agent enroll` under Wine with the in-memory SAM.
fn enroll(
    exe: &Path,
    s: &TestServer,
    token: &str,
    fingerprint: &str,
    state: &Path,
) -> std::process::Output {
    let state = win(state);
    let args = [
        "agent",
        "enroll",
        "--server",
        &s.base,
        "--token",
        token,
        "--fingerprint",
        fingerprint,
        "--state-dir",
        &state,
        "--os-backend",
        "fake-sam",
    ];
    wine(exe, &args).output().unwrap()
}

struct Agent(Option<Child>);

impl Agent {
    fn start(exe: &Path, state: &Path) -> Agent {
        let child = wine(
            exe,
            &[
                "agent",
                "run",
                "--state-dir",
                &win(state),
                "--os-backend",
                "fake-sam",
            ],
        )
        .stdout(Stdio::null())
        .stderr(log(state))
        .spawn()
        .unwrap();
        Agent(Some(child))
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

#[actix_web::test]
async fn the_windows_agent_under_wine_enrolls_grants_and_revokes_on_time_offline() {
    let Some(exe) = exe() else {
        return;
    };
    let mut s = TestServer::start().await;
    s.follow_real_time();
    let (t, token) = tenant_with_token(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");

    // A wrong fingerprint: refused before anything is sent, in one line.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let out = enroll(&exe, &s, &token, &wrong, &state);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not match"), "{}", text(&out));

    let out = enroll(&exe, &s, &token, &s.fingerprint, &state);
    assert!(out.status.success(), "{}", text(&out));
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    let device = DeviceId::parse(st["device_id"].as_str().unwrap()).unwrap();
    assert_eq!(st["baseline_admins"], serde_json::json!(["Administrator"]));

    let mut agent = Agent::start(&exe, &state);
    let scope = system_scope(t.id);
    // A technician account, then a grant that ends six seconds from now.
    service::commands::queue(
        s.ctx(),
        &scope,
        device,
        Action::EnsureAccount {
            account: "msp-nik".into(),
            password: "a-long-windows-password-1".into(),
            admin: false,
            version: None,
        },
    )
    .await
    .unwrap();
    grant_nik(&s, &scope, device, 8).await;
    assert!(
        eventually(60, || admins(&state).contains(&"msp-nik".to_string())).await,
        "granted in the SAM: {}",
        fake_sam(&state)
    );
    assert_eq!(fake_sam(&state)["users"]["msp-nik"]["enabled"], true);

    // Appliance down, agent restarted mid-grant: the deadline holds on the agent's own.
    s.stop().await;
    agent.kill();
    agent = Agent::start(&exe, &state);
    assert!(
        eventually(60, || !admins(&state).contains(&"msp-nik".to_string())).await,
        "revoked on time with the appliance down"
    );
    assert!(
        admins(&state).contains(&"administrator".to_string()),
        "the baseline stays"
    );
    let queued = || std::fs::read_to_string(state.join("events.jsonl")).unwrap_or_default();
    assert!(
        eventually(10, || queued().contains("grant_expired")).await,
        "{}",
        queued()
    );

    // The agent restarts again before the appliance is back: the event is sent once.
    agent.kill();
    agent = Agent::start(&exe, &state);
    s.restart().await;
    let mut uploaded = 0;
    for _ in 0..600 {
        uploaded = device_events(&s, t.id, device, "grant_expired").await;
        if uploaded > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said = std::fs::read_to_string(state.with_extension("log")).unwrap_or_default();
    assert_eq!(
        uploaded, 1,
        "uploaded once the appliance is back; the agent said: {said}"
    );
    assert!(
        eventually(20, || queued().is_empty()).await,
        "the queue drains"
    );
    assert_eq!(
        device_events(&s, t.id, device, "grant_expired").await,
        1,
        "exactly once"
    );

    // Uninstalling takes back a running grant and disables the managed account first; here the
    // service manager (Wine's) has no Hourglass service, which is said in one line.
    grant_nik(&s, &scope, device, 3600).await;
    assert!(
        eventually(60, || admins(&state).contains(&"msp-nik".to_string())).await,
        "granted again"
    );
    assert!(
        eventually(10, || std::fs::read_to_string(state.join("state.json"))
            .unwrap_or_default()
            .contains("msp-nik"))
        .await
    );
    agent.kill();
    let out = wine(
        &exe,
        &[
            "agent",
            "uninstall-service",
            "--state-dir",
            &win(&state),
            "--os-backend",
            "fake-sam",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("service manager"), "{}", text(&out));
    assert!(
        !admins(&state).contains(&"msp-nik".to_string()),
        "{}",
        fake_sam(&state)
    );
    assert_eq!(fake_sam(&state)["users"]["msp-nik"]["enabled"], false);
    agent.kill();
    s.stop().await;
}

/// The MSI an RMM deploys: wixl builds it from the cross-built binary; msiinfo shows the
/// file, the enrollment from the public properties, the service installed after it and
/// taken away (with every right) on uninstall.
#[test]
fn the_msi_installs_enrolls_and_registers_the_service() {
    let Some(exe) = exe() else {
        return;
    };
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !have("wixl") || !have("msiinfo") {
        if std::env::var("HOURGLASS_REQUIRE_WINE").is_ok_and(|v| v == "1") {
            panic!(
                "HOURGLASS_REQUIRE_WINE=1 but wixl/msiinfo are missing (apt-get install wixl msitools)"
            );
        }
        eprintln!("SKIPPED MSI test: wixl or msiinfo missing");
        return;
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let msi = dir.path().join("hourglass-agent.msi");
    let rel = exe.strip_prefix(top).unwrap();
    let out = Command::new("wixl")
        .current_dir(top)
        .args(["-a", "x64", "-D", "Version=0.1.0", "-D"])
        .arg(format!("Exe={}", rel.display()))
        .arg("-o")
        .arg(&msi)
        .arg("appliance/windows/hourglass-agent.wxs")
        .output()
        .unwrap();
    assert!(out.status.success() && msi.exists(), "{}", text(&out));
    let table = |name: &str| {
        let o = Command::new("msiinfo")
            .arg("export")
            .arg(&msi)
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert!(table("File").contains("hourglass.exe"));
    let actions = table("CustomAction");
    assert!(
        actions.contains(
            r#"agent enroll --server "[SERVER]" --token "[TOKEN]" --fingerprint "[FINGERPRINT]""#
        ),
        "{actions}"
    );
    assert!(
        actions.contains("agent install-service") && actions.contains("agent uninstall-service"),
        "{actions}"
    );
    let seq = table("InstallExecuteSequence");
    assert!(seq.contains("Enroll\tNOT Installed AND TOKEN"), "{seq}");
    assert!(seq.contains("UninstallService\tREMOVE=\"ALL\""), "{seq}");
    let props = table("Property");
    for p in ["SERVER", "FINGERPRINT", "MsiHiddenProperties\tTOKEN"] {
        assert!(props.contains(p), "{p}: {props}");
    }
}

/// End users on Windows ask through the service's named pipe: the daemon names the asker
/// from the client process's token, and a `--user` for someone else is refused.
#[actix_web::test]
async fn a_windows_user_asks_through_the_pipe_and_cannot_ask_for_another() {
    let Some(exe) = exe() else {
        return;
    };
    let mut s = TestServer::start().await;
    s.follow_real_time();
    let (_, token, _) = crate::agent::tenant_and_admin(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let state_w = win(&state);
    let out = enroll(&exe, &s, &token, &s.fingerprint, &state);
    assert!(out.status.success(), "{}", text(&out));
    let mut agent = Agent::start(&exe, &state);
    let ask = |extra: &[&str]| {
        let mut a = vec!["agent"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--state-dir", &state_w]);
        wine(&exe, &a).output().unwrap()
    };
    let mut out = ask(&[
        "request-admin",
        "--minutes",
        "30",
        "--reason",
        "install the printer driver",
    ]);
    for _ in 0..40 {
        if out.status.success() || !text(&out).contains("cannot reach") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        out = ask(&[
            "request-admin",
            "--minutes",
            "30",
            "--reason",
            "install the printer driver",
        ]);
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );

    // Windows said who asked: the request is in that account's name.
    let accounts = crate::requests::pending_accounts(&s).await;
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let me = accounts[0].clone();
    assert!(!me.is_empty());

    let out = ask(&[
        "request-admin",
        "--minutes",
        "30",
        "--reason",
        "x",
        "--user",
        "someone-else",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("you are {me}")),
        "{}",
        text(&out)
    );
    let out = ask(&["status"]);
    assert!(
        out.status.success() && text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );

    // Pipe clients that hang up mid-line or send what the agent does not know change
    // nothing, and the pipe goes on answering.
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let hangup = mingw(&tools, "pipe_hangup");
    let pipe = format!(
        r"\\.\pipe\hourglass-agent-{}",
        hex::encode(&hourglass::crypto::sha256(state_w.to_lowercase().as_bytes())[..8])
    );
    let out = wine(&hangup, &[&pipe]).output().unwrap();
    assert!(out.status.success(), "{:?} {}", out.status, text(&out));
    assert!(
        text(&out).contains("\"ok\":false") && text(&out).contains("request"),
        "{}",
        text(&out)
    );
    let out = ask(&["status"]);
    assert!(
        out.status.success() && text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );

    // run-elevated through the pipe: the policy decides, the program's exit code comes back.
    // (Started as the agent's own account here: fake-sam does not call LsaLogonUser.)
    let allowed = mingw(&tools, "exit_code");
    let denied = tools.join("denied.exe");
    std::fs::copy(&allowed, &denied).unwrap();
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let (st, p) = crate::logins::api(
        &s,
        &nik,
        "POST",
        "/api/v1/tenants/acme/policies",
        serde_json::json!({
            "name": "Helpdesk tools", "duration": "fixed", "hours": 8, "access": "all",
            "rules": [{"kind": "path", "value": win(&allowed)},
                      {"kind": "path", "value": win(&denied), "deny": true}]
        }),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let version = || {
        std::fs::read_to_string(state.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["policies"]["version"].as_i64())
    };
    assert!(
        eventually(30, || version() == Some(1)).await,
        "the bundle reaches the agent"
    );
    let elevated = |extra: &[&str]| {
        let mut a = vec!["agent", "run-elevated", "--state-dir", &state_w];
        a.extend_from_slice(extra);
        wine(&exe, &a).output().unwrap()
    };
    let out = elevated(&["--", &win(&allowed), "3"]);
    let agent_log = || std::fs::read_to_string(state.with_extension("log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\nagent: {}",
        text(&out),
        agent_log()
    );
    assert!(text(&out).contains("allowed by policy"), "{}", text(&out));
    let out = elevated(&["--", &win(&denied), "0"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("denied by policy"), "{}", text(&out));
    let out = elevated(&["--user", "someone-else", "--", &win(&allowed)]);
    assert!(
        text(&out).contains(&format!("you are {me}")),
        "{}",
        text(&out)
    );
    agent.kill();
    s.stop().await;
}

/// Orders administrator rights for msp-nik for `secs` from the appliance's now.
async fn grant_nik(
    s: &TestServer,
    scope: &hourglass::authz::TenantScope,
    device: DeviceId,
    secs: i64,
) {
    let expires_at = s.clock.now().plus_secs(secs).millis();
    let grant = Action::GrantAdmin {
        account: "msp-nik".into(),
        expires_at,
        session: None,
    };
    service::commands::queue(s.ctx(), scope, device, grant)
        .await
        .unwrap();
}

/// Builds tests/wine/<name>.c into `dir` with mingw.
fn mingw(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/wine/{name}.c"));
    let exe = dir.join(format!("{name}.exe"));
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .arg(src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    exe
}

/// Vendor and product for policies come from the program's version resource: a real PE
/// built here with mingw's windres carries them; garbled or resource-less files give nothing.
#[test]
fn windows_programs_name_their_vendor_and_product() {
    let have = Command::new("x86_64-w64-mingw32-windres")
        .arg("--version")
        .output()
        .is_ok();
    if !have {
        if std::env::var("HOURGLASS_REQUIRE_WINE").is_ok_and(|v| v == "1") {
            panic!("HOURGLASS_REQUIRE_WINE=1 but mingw's windres is missing");
        }
        eprintln!("SKIPPED version-resource test: mingw missing");
        return;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("version.o");
    let out = Command::new("x86_64-w64-mingw32-windres")
        .arg(src.join("version.rc"))
        .arg("-o")
        .arg(&res)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let setup = dir.path().join("setup.exe");
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .arg(src.join("hello.c"))
        .arg(&res)
        .arg("-o")
        .arg(&setup)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&setup).unwrap();
    assert_eq!(
        hourglass::agent::pe::version_strings(&bytes),
        Some((
            "Contoso Ltd.".to_string(),
            "Contoso Printer Setup".to_string()
        ))
    );
    // Cut short (headers only) or without a version resource: nothing, and no panic.
    assert_eq!(hourglass::agent::pe::version_strings(&bytes[..1024]), None);
    // What the Windows agent itself reports for it: the version resource, and an unsigned
    // file never counts as verified (WinVerifyTrust, as Wine implements it).
    if let Some(hg) = exe() {
        let state = dir.path().join("describe");
        let out = wine(
            &hg,
            &[
                "agent",
                "describe",
                &win(&setup),
                "--state-dir",
                &win(&state),
            ],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let app: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(app["vendor"], "Contoso Ltd.", "{app}");
        assert_eq!(app["product"], "Contoso Printer Setup");
        assert_eq!(app["verified"], false);
        assert_eq!(app["signer"], "");
        assert_eq!(app["sha256"], hourglass::crypto::sha256_hex(&bytes));
    }
    let plain = dir.path().join("plain.exe");
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .arg(src.join("hello.c"))
        .arg("-o")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        hourglass::agent::pe::version_strings(&std::fs::read(&plain).unwrap()),
        None
    );
}
