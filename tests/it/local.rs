//! End users ask without root: `agent request-admin | status | extend | end-session` run as
//! an ordinary user (here: `setpriv` to the throw-away root's alice and bob uids) and go
//! through the daemon's socket, which decides from the peer's uid who is asking.

use std::process::Output;

use crate::agent::{enroll, eventually, tenant_with_token};
use crate::support::*;

/// The real binary as `uid`, with no other groups.
fn as_uid(uid: u32, args: &[&str]) -> Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &uid.to_string(),
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env_remove("SUDO_USER")
        .output()
        .unwrap()
}

#[actix_web::test]
async fn an_ordinary_user_asks_through_the_daemon_which_knows_who_they_are() {
    let mut s = TestServer::start().await;
    let (_, token) = tenant_with_token(&s).await;
    let mut ws = enroll(&s, &token);
    let root = ws.root.path().to_path_buf();
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        passwd + "bob:x:1001:1001::/home/bob:/bin/bash\n",
    )
    .unwrap();
    ws.start();
    let dir = ws.state.path().to_str().unwrap().to_string();
    let socket = hourglass::agent::local::socket_path(ws.state.path());
    assert!(
        eventually(20, || socket.exists()).await,
        "the daemon opens its socket"
    );

    // Clients that hang up at once or mid-line, or send garbage, change nothing and leave
    // the daemon answering the next one.
    {
        use std::io::{Read, Write};
        drop(std::os::unix::net::UnixStream::connect(&socket).unwrap());
        let mut half = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        half.write_all(br#"{"op":"request_admin","minu"#).unwrap();
        drop(half);
        let mut bad = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        bad.write_all(b"{\"op\":\"become_root\"}\n").unwrap();
        let mut answer = String::new();
        bad.read_to_string(&mut answer).unwrap();
        assert!(
            answer.contains("\"ok\":false") && answer.contains("request"),
            "{answer}"
        );
    }

    // The device's credentials stay unreadable to alice: she cannot ask the appliance herself.
    let cat = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "1000",
            "--regid",
            "1000",
            "--clear-groups",
            "cat",
        ])
        .arg(ws.state.path().join("state.json"))
        .output()
        .unwrap();
    assert!(!cat.status.success(), "state.json must be root's alone");
    let ask = |uid: u32, extra: &[&str]| {
        let mut a = vec!["agent"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--state-dir", &dir]);
        as_uid(uid, &a)
    };

    let out = ask(
        1000,
        &[
            "request-admin",
            "--minutes",
            "30",
            "--reason",
            "install the printer driver",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );

    // The server has it for alice, the account the socket named, not one a flag named.
    assert_eq!(crate::requests::pending_accounts(&s).await, vec!["alice"]);

    // Naming someone else is refused; so is a uid the workstation does not know.
    let out = ask(
        1000,
        &[
            "request-admin",
            "--minutes",
            "30",
            "--reason",
            "x",
            "--user",
            "bob",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("you are alice"), "{}", text(&out));
    let out = ask(4242, &["request-admin", "--minutes", "30", "--reason", "x"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a local account"), "{}", text(&out));

    // Bob can neither end nor extend alice's session, nor read it as his.
    let out = ask(1001, &["end-session"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bob has not asked"), "{}", text(&out));
    let out = ask(1001, &["extend", "--minutes", "30", "--reason", "more"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bob has no session"), "{}", text(&out));
    let out = ask(1001, &["status"]);
    assert!(!out.status.success(), "{}", text(&out));

    // Alice sees and ends her own.
    let out = ask(1000, &["status"]);
    assert!(
        out.status.success() && text(&out).contains("waiting for approval"),
        "{}",
        text(&out)
    );
    // Ending goes to her own request (still pending: the appliance's own answer reaches her).
    let out = ask(1000, &["end-session"]);
    assert!(
        text(&out).contains("pending, not an active session"),
        "{}",
        text(&out)
    );
    ws.kill();
    s.stop().await;
}

/// `run-elevated` needs no root either: alice's program and terminal go to the daemon with
/// her request; an allowed program runs as root on her stdout with its exit code; a denied
/// one or one she cannot read does not run; ending the client (Ctrl-C) ends the program.
#[actix_web::test]
async fn an_ordinary_user_runs_an_allowed_program_through_the_daemon() {
    let mut s = TestServer::start().await;
    let (_, token, _) = crate::agent::tenant_and_admin(&s).await;
    let nik = hourglass::service::tokens::create_for_email(
        s.ctx(),
        "nik@nikpot.com",
        "t",
        sensitive_scope(),
    )
    .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    // A program anyone may read but that only the policy lets run; and one alice cannot read.
    let tools = tempfile::tempdir().unwrap();
    mode(tools.path(), 0o755);
    let slow = tools.path().join("slow-tool");
    std::fs::copy("/usr/bin/sleep", &slow).unwrap();
    mode(&slow, 0o755);
    let secret = tools.path().join("secret-tool");
    std::fs::copy("/usr/bin/id", &secret).unwrap();
    mode(&secret, 0o700);
    let (slow_s, secret_s) = (slow.to_str().unwrap(), secret.to_str().unwrap());
    let (st, p) = crate::logins::api(&s, &nik, "POST", "/api/v1/tenants/acme/policies", serde_json::json!({
        "name": "Helpdesk tools", "duration": "fixed", "hours": 8, "access": "specific", "users": ["alice"],
        "rules": [{"kind": "path", "value": "/usr/bin/id"}, {"kind": "path", "value": "/usr/bin/dash"},
                  {"kind": "path", "value": slow_s}, {"kind": "path", "value": secret_s},
                  {"kind": "path", "value": "/usr/bin/whoami", "deny": true}]
    })).await;
    assert_eq!(st, 201, "{p}");
    assert!(
        eventually(15, || ws.state_json()["policies"]["version"].as_i64()
            == Some(1))
        .await,
        "the bundle reaches the agent"
    );
    let dir = ws.state.path().to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut a = vec!["agent", "run-elevated", "--state-dir", &dir, "--"];
        a.extend_from_slice(extra);
        as_uid(1000, &a)
    };

    let out = run(&["id", "-u"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "ran as root, on alice's own stdout: {}",
        text(&out)
    );
    assert!(text(&out).contains("allowed by policy"), "{}", text(&out));
    let out = run(&["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let out = run(&["whoami"]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("denied by policy"), "{}", text(&out));
    let out = run(&[secret_s]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    let named = as_uid(
        1000,
        &[
            "agent",
            "run-elevated",
            "--user",
            "bob",
            "--state-dir",
            &dir,
            "--",
            "id",
        ],
    );
    assert!(!named.status.success() && named.stdout.is_empty());
    assert!(text(&named).contains("you are alice"), "{}", text(&named));

    // The program ends with the client that asked for it.
    let mut client = std::process::Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_hourglass"))
        .args([
            "agent",
            "run-elevated",
            "--state-dir",
            &dir,
            "--",
            slow_s,
            "4242",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", "^[^ ]*slow-tool 4242"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(eventually(15, running).await, "the program started");
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(
        eventually(15, || !running()).await,
        "and ended with its client"
    );
    ws.kill();
    s.stop().await;
}

fn mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
