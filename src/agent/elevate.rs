//! `hourglass agent run-elevated -- PROGRAM ARGS…`: elevate the program, not the user
//! (DESIGN §4). The agent describes the program (SHA-256, path, and from dpkg its package,
//! maintainer and whether the file is unmodified), asks the appliance for a decision — or,
//! when it cannot be reached, decides from the cached policy bundle with the same engine —
//! and on `allow` runs it as root, recording event 101 with the policy and rule.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::state::State;
use crate::error::{Error, Result};
use crate::model::commands::SessionRef;
use crate::model::policies::{self as engine, App, Decision};
use crate::proto::EventKind;

/// Finds the executable: a path as given, else the first match on `PATH`.
/// On Windows a bare name may leave out `.exe`, and `\\` or a drive letter make a path.
pub fn resolve(program: &str) -> Result<PathBuf> {
    let is_path = program.contains('/') || (cfg!(windows) && program.contains(['\\', ':']));
    let names = if cfg!(windows) && !program.to_ascii_lowercase().ends_with(".exe") {
        vec![program.to_string(), format!("{program}.exe")]
    } else {
        vec![program.to_string()]
    };
    let found = if is_path {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .flat_map(|d| names.iter().map(move |n| d.join(n)))
                .find(|p| p.is_file())
        })
    };
    let p = found.ok_or_else(|| Error::validation("program", format!("{program}: not found")))?;
    std::fs::canonicalize(&p)
        .map(|c| PathBuf::from(plain_path(&c.to_string_lossy())))
        .map_err(|e| Error::validation("program", format!("{}: {e}", p.display())))
}

/// Windows canonical paths come back as `\\?\C:\…` (or `\\?\UNC\host\share`); policies
/// and people write `C:\…`, so the verbatim prefix is dropped.
fn plain_path(p: &str) -> String {
    if let Some(unc) = p.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{unc}")
    } else if let Some(rest) = p.strip_prefix(r"\\?\") {
        rest.to_string()
    } else {
        p.to_string()
    }
}

fn run_text(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The program as it will run. What was hashed must be what runs as root: a file only root
/// can change (root's file, in directories others cannot write to) runs in place; anything
/// else is first copied into the agent's private directory and the copy is hashed and run,
/// so swapping the file during the approval wait changes nothing.
pub struct Staged {
    pub run: PathBuf,
    pub bytes: Vec<u8>,
    copy: Option<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(c) = &self.copy {
            let _ = std::fs::remove_file(c);
        }
    }
}

pub fn stage(path: &Path, state_dir: &Path) -> Result<Staged> {
    let bytes = std::fs::read(path)?;
    stage_bytes(path, bytes, only_root_can_change(path), state_dir)
}

/// Stages `bytes`, read from `path` (by the daemon, through the descriptor the user opened):
/// in place only when `in_place` (the file is root's alone and is the one that was read).
pub fn stage_bytes(
    path: &Path,
    bytes: Vec<u8>,
    in_place: bool,
    state_dir: &Path,
) -> Result<Staged> {
    use crate::fsx::OwnerOnly;
    use std::io::Write;
    if in_place {
        return Ok(Staged {
            run: path.to_path_buf(),
            bytes,
            copy: None,
        });
    }
    let dir = state_dir.join("run");
    std::fs::DirBuilder::new()
        .recursive(true)
        .owner_only()
        .create(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let copy = dir.join(format!("{}-{name}", uuid::Uuid::now_v7().simple()));
    let mut f = crate::fsx::owner_program(std::fs::OpenOptions::new().write(true).create_new(true))
        .open(&copy)?;
    let staged = Staged {
        run: copy.clone(),
        bytes,
        copy: Some(copy),
    };
    f.write_all(&staged.bytes)?;
    f.sync_all()?;
    Ok(staged)
}

/// Owned by root and not writable by group or others, and so is every directory above it
/// (a sticky directory such as /tmp is fine: others cannot replace root's entry in it).
#[cfg(unix)]
pub fn only_root_can_change(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        return false;
    }
    path.ancestors().skip(1).all(|d| {
        std::fs::metadata(d)
            .is_ok_and(|m| m.uid() == 0 && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0))
    })
}

/// On Windows every program is staged: whether only administrators can change a file is
/// an ACL question this agent does not answer yet.
#[cfg(not(unix))]
pub fn only_root_can_change(_path: &Path) -> bool {
    false
}

/// The attributes the engine matches on, from the program's path and the bytes that will run
/// (`on_disk` holds exactly those bytes: its signature is the one checked).
pub fn describe(path: &Path, bytes: &[u8], on_disk: &Path) -> Result<App> {
    let p = path.display().to_string();
    let mut app = App {
        path: p.clone(),
        sha256: hex::encode(crate::crypto::sha256(bytes)),
        ..App::default()
    };
    // The Debian package owning the file: product = package, vendor = its maintainer,
    // verified = installed from the (signed) archive and unmodified since. With merged /usr
    // dpkg knows /usr/bin/ls as /bin/ls, so both names are asked for.
    let known = dpkg_names(&p)
        .into_iter()
        .find_map(|name| run_text("dpkg", &["-S", &name]).map(|owner| (name, owner)));
    if let Some((p, owner)) = known
        && let Some(pkg) = owner.lines().next().and_then(|l| l.split(':').next())
    {
        let pkg = pkg.trim().to_string();
        let maintainer =
            run_text("dpkg-query", &["-W", "-f", "${Maintainer}", &pkg]).unwrap_or_default();
        app.vendor = maintainer
            .split('<')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let modified = run_text("dpkg", &["--verify", &pkg])
            .map(|o| o.lines().any(|l| l.ends_with(&p)))
            .unwrap_or(true);
        app.verified = !modified;
        if app.verified {
            app.signer = "Debian".into();
        }
        app.product = pkg;
    }
    windows_attributes(&mut app, on_disk, bytes);
    Ok(app)
}

/// The names dpkg may have recorded for a file: as is, and without a leading /usr for the
/// directories merged /usr turned into links (/bin, /sbin, /lib…).
fn dpkg_names(path: &str) -> Vec<String> {
    let mut names = vec![path.to_string()];
    if let Some(rest) = path.strip_prefix("/usr")
        && ["/bin/", "/sbin/", "/lib/", "/lib64/"]
            .iter()
            .any(|d| rest.starts_with(d))
    {
        names.push(rest.to_string());
    }
    names
}

/// A Windows program names its vendor and product in its version resource; its Authenticode
/// signature says who signed it and whether the file is as signed.
#[cfg(windows)]
fn windows_attributes(app: &mut App, on_disk: &Path, bytes: &[u8]) {
    if let Some((vendor, product)) = super::pe::version_strings(bytes) {
        app.vendor = vendor;
        app.product = product;
    }
    let (verified, signer) = super::win32::authenticode(on_disk);
    app.verified = verified;
    app.signer = signer;
}

#[cfg(not(windows))]
fn windows_attributes(_app: &mut App, _path: &Path, _bytes: &[u8]) {}

/// Asks the appliance; `Ok(None)` when it cannot be reached (then the cache decides).
async fn ask(s: &State, user: &str, app: &App) -> Result<Option<Decision>> {
    let c = super::requests::client(s)?;
    let sent = c
        .post(format!("{}/agent/v1/decide", s.server))
        .header("x-device-id", s.device_id.to_string())
        .bearer_auth(&s.device_secret)
        .timeout(Duration::from_secs(5))
        .json(&serde_json::json!({"user": user, "app": app}))
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() || e.is_timeout() => return Ok(None),
        Err(e) => return Err(Error::startup(format!("decide: {e}"))),
    };
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = v["message"].as_str().unwrap_or("refused").to_string();
        return Err(Error::startup(format!("{msg} ({status})")));
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| Error::startup(format!("an answer this agent does not understand: {e}")))
}

/// The decision for `user` running `app`: the appliance's, or the cached bundle's offline.
/// Returns it with where it came from.
pub fn decide(dir: &Path, user: &str, app: &App, wall_ms: i64) -> Result<(Decision, &'static str)> {
    let s = State::load(dir)?;
    let used = super::offline::with(dir, |o| Ok(o.used_once.clone()))?;
    let online = super::requests::runtime()?.block_on(ask(&s, user, app))?;
    Ok(match online {
        // A one-off approval that already ran here does not run again.
        Some(Decision::Allow { policy, .. }) if used.contains(&policy) => {
            (Decision::Ask, "appliance (that approval was for one run)")
        }
        Some(d) => (d, "appliance"),
        None => {
            let ps: Vec<_> = s
                .policies
                .as_ref()
                .map(|b| b.policies.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter(|p| !used.contains(&p.id))
                .cloned()
                .collect();
            (
                engine::decide(
                    &ps,
                    &s.device_id.to_string(),
                    user,
                    app,
                    s.server_now(wall_ms),
                ),
                "cached policies (appliance unreachable)",
            )
        }
    })
}

/// Whether the cached bundle marks `policy` as "just this request".
fn is_once(s: &State, policy: &str) -> bool {
    s.policies
        .as_ref()
        .is_some_and(|b| b.policies.iter().any(|p| p.id == policy && p.once))
}

/// On `ask`: an application elevation request for this program (justification, minutes,
/// optional ticket) that runs through the approval flow of JIT sessions.
pub fn request(
    dir: &Path,
    user: &str,
    app: &App,
    minutes: i64,
    reason: &str,
    ticket: Option<&str>,
) -> Result<serde_json::Value> {
    let s = State::load(dir)?;
    let body = serde_json::json!({"account": user, "minutes": minutes, "reason": reason,
        "ticket": ticket, "kind": "application", "app": app});
    super::requests::runtime()?.block_on(super::requests::call(
        &s,
        reqwest::Method::POST,
        "/requests",
        Some(body),
    ))
}

/// Waits up to `wait` for a person to decide `id`, asking every two seconds; returns the
/// request as last seen (still `pending` when the wait ran out).
pub fn wait(dir: &Path, id: &str, wait: Duration) -> Result<serde_json::Value> {
    let s = State::load(dir)?;
    super::requests::runtime()?.block_on(async {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let v =
                super::requests::call(&s, reqwest::Method::GET, &format!("/requests/{id}"), None)
                    .await?;
            if v["state"] != "pending" || tokio::time::Instant::now() >= until {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
}

/// The user's running JIT admin session on this machine, if any (its grant has not ended).
pub fn session(dir: &Path, user: &str, wall_ms: i64) -> Result<Option<SessionRef>> {
    let s = State::load(dir)?;
    let now = s.server_now(wall_ms);
    Ok(s.grants
        .iter()
        .find(|g| g.account == user && g.expires_at > now)
        .map(|g| {
            g.session.clone().unwrap_or(SessionRef {
                request_id: String::new(),
                ticket: None,
            })
        }))
}

/// During a JIT admin session the user's rights are already raised: launching a program
/// elevated raises the passive token event (106) and elevate on demand (101), both stamped
/// with the session's RequestIdentifier and TicketIdentifier (BeyondTrust's JIT audit).
pub fn record_in_session(
    dir: &Path,
    user: &str,
    app: &App,
    session: &SessionRef,
    at: i64,
) -> Result<()> {
    let s = (!session.request_id.is_empty()).then_some(session);
    let data = |kind: &str| {
        super::enforcer::stamped(
            serde_json::json!({"user": user, "path": app.path, "sha256": app.sha256, "via": kind}),
            s,
        )
    };
    let events = [
        super::enforcer::event(EventKind::PassiveToken, at, data("jit_session")),
        super::enforcer::event(EventKind::ElevateOnDemand, at, data("jit_session")),
    ];
    super::offline::with(dir, |o| {
        o.outbox.extend(events);
        Ok(())
    })
}

/// Queues event 101 for the daemon to upload (through the shared offline file).
/// A "just this request" policy is marked used here, so it cannot run twice even offline.
pub fn record(dir: &Path, user: &str, app: &App, d: &Decision, at: i64) -> Result<()> {
    let e = super::enforcer::event(
        EventKind::ElevateOnDemand,
        at,
        serde_json::json!({"user": user, "path": app.path, "sha256": app.sha256, "decision": d}),
    );
    let s = State::load(dir)?;
    let once = match d {
        Decision::Allow { policy, .. } if is_once(&s, policy) => Some(policy.clone()),
        _ => None,
    };
    super::offline::with(dir, |o| {
        o.outbox.push(e);
        if let Some(p) = once {
            o.used_once.push(p);
        }
        Ok(())
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn windows_verbatim_paths_read_as_people_write_them() {
        assert_eq!(plain_path(r"\\?\C:\Tools\a.exe"), r"C:\Tools\a.exe");
        assert_eq!(plain_path(r"\\?\UNC\nas\apps\a.exe"), r"\\nas\apps\a.exe");
        assert_eq!(plain_path("/usr/bin/ls"), "/usr/bin/ls");
    }

    #[test]
    fn merged_usr_paths_are_asked_for_under_both_names() {
        assert_eq!(dpkg_names("/usr/bin/ls"), vec!["/usr/bin/ls", "/bin/ls"]);
        assert_eq!(dpkg_names("/usr/sbin/x"), vec!["/usr/sbin/x", "/sbin/x"]);
        assert_eq!(dpkg_names("/usr/share/x"), vec!["/usr/share/x"]);
        assert_eq!(dpkg_names("/opt/x"), vec!["/opt/x"]);
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_others_can_change_runs_from_a_private_copy_of_what_was_hashed() {
        let t = tempfile::tempdir().unwrap();
        let (state, prog) = (t.path().join("state"), t.path().join("tool"));
        std::fs::write(&prog, b"#!/bin/sh\necho good\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o777)).unwrap();
        let staged = stage(&prog, &state).unwrap();
        assert_ne!(staged.run, prog, "a world-writable file is copied");
        // Swapped while the request waits: what runs is still what was hashed.
        std::fs::write(&prog, b"#!/bin/sh\necho evil\n").unwrap();
        assert_eq!(
            std::fs::read(&staged.run).unwrap(),
            b"#!/bin/sh\necho good\n"
        );
        assert_eq!(staged.bytes, b"#!/bin/sh\necho good\n");
        let mode = std::fs::metadata(&staged.run).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let copy = staged.run.clone();
        drop(staged);
        assert!(!copy.exists(), "the copy is removed after the run");
    }

    #[test]
    fn a_file_only_root_can_change_runs_in_place() {
        // The tests run as root, in a private temporary directory under a sticky /tmp.
        let t = tempfile::tempdir().unwrap();
        let prog = t.path().join("tool");
        std::fs::write(&prog, b"x").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let staged = stage(&prog, &t.path().join("state")).unwrap();
        assert_eq!(staged.run, prog);
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_ne!(
            stage(&prog, &t.path().join("state")).unwrap().run,
            prog,
            "a writable directory above it is not safe"
        );
    }
}
