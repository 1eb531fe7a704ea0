//! `hourglass agent request-admin | status | end-session | extend`: the end user's side of a
//! JIT admin session, spoken to the appliance with this device's credentials.

use std::path::Path;
use std::time::Duration;

use super::state::State;
use crate::error::{Error, Result};

const END_USERS: &str = "end_users";
const LAST_REQUEST: &str = "last_request";
const LAST_PER_USER: &str = "last_requests.json";

/// Local accounts that asked for rights on this machine: the daemon may grant and revoke
/// their administrator membership (never create them or set passwords).
pub fn end_users(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(END_USERS))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn remember_end_user(dir: &Path, account: &str) -> Result<()> {
    let mut all = end_users(dir);
    if !all.iter().any(|a| a == account) {
        all.push(account.to_string());
        std::fs::write(dir.join(END_USERS), all.join("\n") + "\n")?;
    }
    Ok(())
}

pub(super) fn client(s: &State) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(super::client::pinned_tls_config(&s.fingerprint)?)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(Error::internal)
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)
}

pub(super) async fn call(
    s: &State,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let c = client(s)?;
    let mut rb = c
        .request(method, format!("{}/agent/v1{path}", s.server))
        .header("x-device-id", s.device_id.to_string())
        .bearer_auth(&s.device_secret);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb
        .send()
        .await
        .map_err(|e| Error::startup(format!("cannot reach the appliance at {}: {e}", s.server)))?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = v
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("refused")
            .to_string();
        return Err(Error::startup(format!("{msg} ({status})")));
    }
    Ok(v)
}

/// The user asking: under sudo the one who ran it (a sudoers line for these commands must not
/// let one user act in another's name), else `--user` (root itself), else the current user.
pub fn invoking_user(explicit: Option<String>) -> Result<String> {
    pick_user(
        std::env::var("SUDO_USER").ok(),
        explicit,
        // Windows names the logged-on user USERNAME.
        std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .ok(),
    )
}

fn pick_user(
    sudo: Option<String>,
    explicit: Option<String>,
    current: Option<String>,
) -> Result<String> {
    let real = |u: &Option<String>| u.clone().filter(|u| !u.is_empty() && u != "root");
    match (real(&sudo), explicit) {
        (Some(s), Some(e)) if s != e => Err(Error::Forbidden(format!(
            "--user {e}: you are {s}; only root itself may ask in another user's name"
        ))),
        (Some(s), _) => Ok(s),
        (None, e) => real(&e)
            .or_else(|| real(&current))
            .ok_or_else(|| Error::startup("say which local user asks with --user NAME")),
    }
}

pub fn describe(v: &serde_json::Value) -> String {
    let state = v["state"].as_str().unwrap_or("?");
    let id = v["id"].as_str().unwrap_or("?");
    match state {
        "pending" => format!(
            "Request {id} is waiting for approval ({} minutes asked).",
            v["minutes_requested"]
        ),
        "approved" if v["kind"] == "application" => format!(
            "Request {id} is approved: the program may run with administrator rights (rule: {}).",
            v["grant"].as_str().unwrap_or("once")
        ),
        "approved" => {
            let left = v["expires_at"]
                .as_i64()
                .map(|e| (e - crate::clock::Clock::system().now().millis()) / 60_000)
                .unwrap_or(0);
            format!(
                "Request {id} is approved: administrator rights for about {} more minute(s).",
                left.max(0)
            )
        }
        "denied" => format!(
            "Request {id} was denied: {}",
            v["reason"].as_str().unwrap_or("no reason given")
        ),
        "declined" => format!(
            "Request {id} was declined: {}",
            v["reason"].as_str().unwrap_or("")
        ),
        other => format!("Request {id} is {other}."),
    }
}

pub fn request(
    dir: &Path,
    user: String,
    minutes: i64,
    reason: String,
    ticket: Option<String>,
    kind: &str,
) -> Result<serde_json::Value> {
    let s = State::load(dir)?;
    remember_end_user(dir, &user)?;
    let body = serde_json::json!({"account": user, "minutes": minutes, "reason": reason, "ticket": ticket, "kind": kind});
    let v = runtime()?.block_on(call(&s, reqwest::Method::POST, "/requests", Some(body)))?;
    if kind == "admin"
        && let Some(id) = v["id"].as_str()
    {
        std::fs::write(dir.join(LAST_REQUEST), id)?;
        let mut per_user = last_per_user(dir);
        per_user.insert(
            v["account"].as_str().unwrap_or(&user).to_string(),
            id.to_string(),
        );
        std::fs::write(dir.join(LAST_PER_USER), serde_json::to_vec(&per_user)?)?;
    }
    Ok(v)
}

/// Each end user's last admin request (so one user's status or end is never another's).
fn last_per_user(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read(dir.join(LAST_PER_USER))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// More time for `user`'s own running session.
pub fn request_own_extension(
    dir: &Path,
    user: &str,
    minutes: i64,
    reason: String,
) -> Result<serde_json::Value> {
    if !last_per_user(dir).contains_key(user) {
        return Err(Error::Forbidden(format!(
            "{user} has no session on this machine to extend"
        )));
    }
    request(dir, user.to_string(), minutes, reason, None, "extension")
}

fn last(dir: &Path, user: Option<&str>) -> Result<String> {
    match user {
        Some(u) => last_per_user(dir).get(u).cloned().ok_or_else(|| {
            Error::startup(format!(
                "{u} has not asked for a session on this machine yet"
            ))
        }),
        None => std::fs::read_to_string(dir.join(LAST_REQUEST))
            .map(|s| s.trim().to_string())
            .map_err(|_| Error::startup("no request has been made from this machine yet")),
    }
}

/// The state of `user`'s last request (None: the machine's last).
pub fn status_of(dir: &Path, user: &Option<String>) -> Result<serde_json::Value> {
    let s = State::load(dir)?;
    let id = last(dir, user.as_deref())?;
    runtime()?.block_on(call(
        &s,
        reqwest::Method::GET,
        &format!("/requests/{id}"),
        None,
    ))
}

/// Ends `user`'s own last session early (None: the machine's last).
pub fn end_of(dir: &Path, user: &Option<String>) -> Result<serde_json::Value> {
    let s = State::load(dir)?;
    let id = last(dir, user.as_deref())?;
    runtime()?.block_on(call(
        &s,
        reqwest::Method::POST,
        &format!("/requests/{id}/end"),
        None,
    ))
}

#[cfg(test)]
mod user_tests {
    use super::pick_user;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn under_sudo_the_caller_cannot_name_someone_else() {
        assert!(pick_user(some("alice"), some("bob"), some("root")).is_err());
        assert_eq!(
            pick_user(some("alice"), some("alice"), None).unwrap(),
            "alice"
        );
        assert_eq!(
            pick_user(some("alice"), None, some("root")).unwrap(),
            "alice"
        );
        // Root itself (no sudo) may say for whom.
        assert_eq!(pick_user(None, some("bob"), some("root")).unwrap(), "bob");
        assert_eq!(
            pick_user(some("root"), some("bob"), some("root")).unwrap(),
            "bob"
        );
        assert!(pick_user(None, None, some("root")).is_err());
        assert_eq!(pick_user(None, None, some("carol")).unwrap(), "carol");
    }
}
