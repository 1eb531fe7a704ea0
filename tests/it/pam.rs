//! The offline code at the login prompt: the PAM snippet the appliance ships, run by the real
//! libpam through `pamtester`, checks the code with the agent's state against a throw-away
//! root (never the machine's own accounts). The service files live in /etc/pam.d for the
//! test only, so this needs root and `pamtester`; it is skipped with a message otherwise
//! unless HOURGLASS_REQUIRE_ROOT=1 (set by CI).

use std::io::Write;
use std::process::{Command, Stdio};

use hourglass::clock::Timestamp;
use hourglass::crypto::totp;

use crate::logins::{locked, offline_code_for_nik, opens};
use crate::support::*;

/// The shipped snippet included by a test service whose other modules say no, as
/// `common-auth` would after it (pam_unix against this machine's accounts stands aside).
struct PamService {
    name: String,
}

impl PamService {
    fn install(agent_args: &[String]) -> PamService {
        let name = format!("hourglass-test-{}", std::process::id());
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/appliance/pam/hourglass-offline"
        ))
        .unwrap();
        let ours = format!("{} agent pam-auth", env!("CARGO_BIN_EXE_hourglass"));
        assert!(shipped.contains("/usr/bin/hourglass agent pam-auth"));
        let snippet = shipped.replace(
            "/usr/bin/hourglass agent pam-auth",
            &format!("{ours} {}", agent_args.join(" ")),
        );
        std::fs::write(format!("/etc/pam.d/{name}-offline"), snippet).unwrap();
        std::fs::write(
            format!("/etc/pam.d/{name}"),
            format!("@include {name}-offline\nauth required pam_deny.so\n"),
        )
        .unwrap();
        PamService { name }
    }

    /// `pamtester SERVICE USER authenticate` with `typed` at the password prompt.
    fn authenticate(&self, user: &str, typed: &str) -> (bool, String) {
        let mut child = Command::new("pamtester")
            .args([&self.name, user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{typed}").unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), text(&out))
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.name));
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}-offline", self.name));
    }
}

fn can_run() -> bool {
    let root = euid() == 0;
    let tester = Command::new("pamtester").arg("--version").output().is_ok();
    if root && tester {
        return true;
    }
    if std::env::var("HOURGLASS_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
        panic!("HOURGLASS_REQUIRE_ROOT=1 but /etc/pam.d is not writable or pamtester is missing");
    }
    eprintln!("skipped: the PAM test needs root and pamtester");
    false
}

/// The effective user id, read from /proc (no libc call).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

#[actix_web::test]
async fn an_offline_code_at_the_login_prompt_logs_in_once_and_the_session_ends() {
    if !can_run() {
        return;
    }
    let mut s = TestServer::start().await;
    let (mut ws, code) = offline_code_for_nik(&s).await;
    let root = ws.root.path().to_path_buf();
    // The appliance is out of reach; the technician is at the console.
    s.stop().await;
    let pam = PamService::install(&ws.args());

    // An ordinary password, or an account the appliance does not manage, is not ours.
    let (ok, said) = pam.authenticate("msp-nik", "correct horse battery staple");
    assert!(!ok && !said.contains("Hourglass"), "{said}");
    let (ok, said) = pam.authenticate("alice", &code);
    assert!(!ok && !said.contains("Hourglass"), "{said}");
    // Wrong, and expired (the code of ten minutes ago on the agent's idea of the time):
    // refused, said why, nothing enabled.
    let (ok, said) = pam.authenticate("msp-nik", "000000");
    assert!(!ok && said.contains("wrong code"), "{said}");
    let st = ws.state_json();
    let secret = totp::from_base32(st["offline"]["secret"].as_str().unwrap()).unwrap();
    let agent_now =
        hourglass::clock::Clock::system().now().millis() + st["clock_offset_ms"].as_i64().unwrap();
    let old = totp::code_at(&secret, Timestamp::from_millis(agent_now - 10 * 60_000)).unwrap();
    let (ok, said) = pam.authenticate("msp-nik", &old);
    assert!(!ok && said.contains("wrong code"), "expired: {said}");
    assert!(
        locked(&root, "msp-nik"),
        "nothing enabled by a refused code: {}",
        crate::logins::shadow(&root, "msp-nik")
    );

    // The current code: in, with the account enabled and a password for sudo shown once.
    let (ok, said) = pam.authenticate("msp-nik", &code);
    assert!(ok && said.contains("successfully authenticated"), "{said}");
    let pw = said
        .split("(shown once): ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        opens(&root, "msp-nik", pw),
        "enabled with the shown password"
    );
    let (ok, said) = pam.authenticate("msp-nik", &code);
    assert!(!ok && said.contains("already been used"), "{said}");

    // Back online: the appliance hears of the login and of each refusal; when the offline
    // session is over the agent changes the password and disables the account.
    s.restart().await;
    wait_for_audit(&s, "login_offline", 1).await;
    wait_for_audit(&s, "login_offline_refused", 3).await;
    let refused = audit_details(&s, "login_offline_refused").await;
    assert!(
        refused.iter().all(|d| d["data"]["via"] == "login_prompt"),
        "{refused:?}"
    );
    let ok = audit_details(&s, "login_offline").await;
    assert_eq!(ok[0]["via"], "login_prompt", "{ok:?}");
    s.clock.advance_secs(61 * 60);
    // The held long-poll answers now, so the agent learns the time without waiting it out.
    s.ctx().wake.wake(ws.device);
    crate::agent::wait_until(20, "the offline session ends", || {
        locked(&root, "msp-nik") && !opens(&root, "msp-nik", pw)
    })
    .await;
    ws.kill();
    s.stop().await;
}

async fn wait_for_audit(s: &TestServer, event: &'static str, n: usize) {
    for _ in 0..300 {
        if audit_details(s, event).await.len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{event}: {:?}", audit_details(s, event).await);
}
