//! `agent run-elevated -- PROGRAM ARGS…` from asking to the exit code (DESIGN §4). The same
//! steps serve root at a Linux console and the daemon answering an ordinary user over its
//! socket or pipe: during a JIT session the program simply runs; otherwise the appliance
//! decides (the cached bundle when it cannot be reached); on `ask` a request with the
//! justification goes through the approval flow and is waited for; on `allow` the program is
//! launched. Who launches is the caller's part: root's console runs it itself; the daemon
//! runs it as root with the user's own terminal (Linux, `local`) or in the user's session
//! with the Administrators group added to their token (Windows, `win32::launch_elevated`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::elevate::{self, Staged};
use super::requests;
use crate::error::{Error, Result};
use crate::model::policies::Decision;

/// What the user asked for besides the program.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Elevation {
    pub reason: Option<String>,
    pub minutes: i64,
    pub ticket: Option<String>,
    /// How long to wait for a person to decide (0: ask and return).
    pub wait_minutes: u64,
}

/// How an elevation ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The program ran; its exit code.
    Ran { code: i32 },
    /// Asked; nobody decided within the wait.
    Pending { id: String },
    /// No policy allows it and no justification came with the ask: one may be given.
    NeedsReason { message: String },
}

#[allow(clippy::disallowed_methods)] // the agent's wall clock, corrected by the server offset
fn wall_ms() -> i64 {
    crate::clock::Clock::system().now().millis()
}

/// Runs the flow for `user` and the program at `path`, staged as `staged`. `say` tells the
/// person what is happening; `launch` runs the staged program and returns its exit code.
pub fn run(
    dir: &Path,
    user: &str,
    path: &Path,
    staged: &Staged,
    e: &Elevation,
    say: &mut dyn FnMut(String),
    launch: &mut dyn FnMut(&Path) -> Result<i32>,
) -> Result<Outcome> {
    let app = elevate::describe(path, &staged.bytes, &staged.run)?;
    let shown = path.display();
    if let Some(session) = elevate::session(dir, user, wall_ms())? {
        // An administrator for now anyway: no policy needed, the session's trail records it.
        elevate::record_in_session(dir, user, &app, &session, wall_ms())?;
        say(format!("{shown} runs in your administrator session"));
        return Ok(Outcome::Ran {
            code: launch(&staged.run)?,
        });
    }
    let mut asked = false;
    loop {
        let now = wall_ms();
        let (d, from) = elevate::decide(dir, user, &app, now)?;
        match &d {
            Decision::Allow { policy, rule, .. } => {
                elevate::record(dir, user, &app, &d, now)?;
                let rule = rule
                    .as_ref()
                    .map(|r| format!(", rule {r}"))
                    .unwrap_or_default();
                say(format!("{shown} allowed by policy {policy}{rule} ({from})"));
                return Ok(Outcome::Ran {
                    code: launch(&staged.run)?,
                });
            }
            Decision::Deny { policy, rule } => {
                return Err(Error::Forbidden(format!(
                    "{shown} is denied by policy {policy}, rule {rule} ({from})"
                )));
            }
            Decision::Ask if !asked => {
                let Some(reason) = e.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
                    return Ok(Outcome::NeedsReason {
                        message: format!(
                            "no application policy lets {user} run {shown} with administrator rights ({from}); ask for it with --reason"
                        ),
                    });
                };
                let v = elevate::request(dir, user, &app, e.minutes, reason, e.ticket.as_deref())?;
                say(requests::describe(&v));
                if v["state"] == "pending" {
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    if e.wait_minutes == 0 {
                        return Ok(Outcome::Pending { id });
                    }
                    say(format!(
                        "waiting up to {} minute(s) for a decision…",
                        e.wait_minutes
                    ));
                    let v = elevate::wait(dir, &id, Duration::from_secs(e.wait_minutes * 60))?;
                    say(requests::describe(&v));
                    if v["state"] == "pending" {
                        return Ok(Outcome::Pending { id });
                    }
                }
                asked = true;
            }
            Decision::Ask => {
                return Err(Error::Forbidden(format!(
                    "{shown} may not run with administrator rights ({from})"
                )));
            }
        }
    }
}

/// A program's exit status as a shell reports it (128 + the signal that ended it).
pub fn code_of(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

/// Waits for `child`, ending it if `gone` says the person who asked has gone away.
pub fn wait_or_end(
    mut child: std::process::Child,
    gone: &std::sync::atomic::AtomicBool,
) -> Result<i32> {
    use std::sync::atomic::Ordering;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(code_of(status));
        }
        if gone.load(Ordering::Relaxed) {
            let _ = child.kill();
            return Ok(code_of(child.wait()?));
        }
        crate::clock::sleep_blocking(Duration::from_millis(100));
    }
}
