//! End users talk to the daemon, not to the appliance: `agent request-admin | status |
//! end-session | extend` run as the ordinary user and send one JSON line over a Unix socket;
//! the daemon learns who is asking from the socket itself (SO_PEERCRED), never from a flag,
//! and asks the appliance with the device's credentials, which only it can read. Root may
//! still name another user (`--user`), as on the appliance's console.
//!
//! The socket sits beside the state folder (`/var/lib/hourglass-agent.sock`), open to every
//! local user: who may do what is decided per request from the peer's uid.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::requests;
use crate::error::{Error, Result};

/// A request line is small; anything longer is refused unread.
#[cfg(unix)]
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Ask {
    RequestAdmin {
        minutes: i64,
        reason: String,
        ticket: Option<String>,
        /// Honoured for root only.
        user: Option<String>,
    },
    Extend {
        minutes: i64,
        reason: String,
        user: Option<String>,
    },
    Status {},
    EndSession {},
}

#[cfg(unix)]
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    error: String,
}

/// The socket for a state folder: its sibling `<state-dir>.sock`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    let mut p = state_dir.as_os_str().to_owned();
    p.push(".sock");
    PathBuf::from(p)
}

/// The account name of `uid` in `root`'s /etc/passwd.
fn name_of(root: &Path, uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// Who a request is for: the caller; root may name someone else.
pub fn caller(root: &Path, uid: u32, named: Option<String>) -> Result<String> {
    let named = named.filter(|n| !n.is_empty());
    if uid == 0 {
        return named.ok_or_else(|| Error::validation("user", "root must say which user asks"));
    }
    let me = name_of(root, uid).ok_or_else(|| {
        Error::Forbidden(format!(
            "uid {uid} is not a local account of this workstation"
        ))
    })?;
    match named {
        Some(n) if n != me => Err(Error::Forbidden(format!(
            "--user {n}: you are {me}; only root may ask in another user's name"
        ))),
        _ => Ok(me),
    }
}

/// The daemon's answer to one request from `uid` (blocking: it talks to the appliance).
pub fn handle(dir: &Path, root: &Path, uid: u32, ask: Ask) -> Result<serde_json::Value> {
    match ask {
        Ask::RequestAdmin {
            minutes,
            reason,
            ticket,
            user,
        } => {
            let user = caller(root, uid, user)?;
            requests::request(dir, user, minutes, reason, ticket, "admin")
        }
        Ask::Extend {
            minutes,
            reason,
            user,
        } => {
            let user = caller(root, uid, user)?;
            requests::request_own_extension(dir, &user, minutes, reason)
        }
        Ask::Status {} => requests::status_of(dir, &caller_or_machine(root, uid)?),
        Ask::EndSession {} => requests::end_of(dir, &caller_or_machine(root, uid)?),
    }
}

/// Status and ending act on the caller's own last request (root: the machine's).
fn caller_or_machine(root: &Path, uid: u32) -> Result<Option<String>> {
    if uid == 0 {
        return Ok(None);
    }
    caller(root, uid, None).map(Some)
}

#[cfg(unix)]
pub use unix::{ask, serve};

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    use super::{Answer, Ask, MAX_LINE, handle};
    use crate::error::{Error, Result};

    /// Listens until the daemon stops; one request per connection.
    pub async fn serve(path: PathBuf, dir: PathBuf, root: PathBuf) -> Result<()> {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| Error::startup(format!("cannot listen on {}: {e}", path.display())))?;
        // Every local user may connect; the peer's uid decides what they may do.
        crate::fsx::set_mode(&path, 0o666)?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (dir, root) = (dir.clone(), root.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(60), one(stream, dir, root)).await;
            });
        }
    }

    async fn one(stream: tokio::net::UnixStream, dir: PathBuf, root: PathBuf) -> Result<()> {
        let uid = stream.peer_cred()?.uid();
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        // A client that never finishes its line is dropped, not waited for.
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::BufReader::new(r.take(MAX_LINE as u64 + 1)).read_line(&mut line),
        )
        .await;
        let answer = match read {
            Ok(Ok(_)) if line.len() > MAX_LINE => Err(Error::validation("request", "too long")),
            Ok(Ok(_)) => match serde_json::from_str::<Ask>(line.trim()) {
                Ok(ask) => tokio::task::spawn_blocking(move || handle(&dir, &root, uid, ask))
                    .await
                    .map_err(Error::internal)
                    .and_then(|r| r),
                Err(e) => Err(Error::validation("request", e)),
            },
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::validation("request", "not received in time")),
        };
        let a = match answer {
            Ok(value) => Answer {
                ok: true,
                value,
                error: String::new(),
            },
            Err(e) => Answer {
                ok: false,
                value: serde_json::Value::Null,
                error: e.to_string(),
            },
        };
        let mut out = serde_json::to_vec(&a)?;
        out.push(b'\n');
        w.write_all(&out).await?;
        Ok(())
    }

    /// The user's side: one request, one answer.
    pub fn ask(path: &Path, ask: &Ask) -> Result<serde_json::Value> {
        let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
            Error::startup(format!(
                "cannot reach the Hourglass agent at {} ({e}): is `hourglass agent run` running?",
                path.display()
            ))
        })?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut line = serde_json::to_vec(ask)?;
        line.push(b'\n');
        s.write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(s.take(1 << 20)).read_line(&mut answer)?;
        let a: Answer = serde_json::from_str(answer.trim())
            .map_err(|e| Error::startup(format!("the agent answered something unreadable: {e}")))?;
        if a.ok {
            Ok(a.value)
        } else {
            Err(Error::startup(a.error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(r.path().join("etc")).unwrap();
        std::fs::write(
            r.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
        )
        .unwrap();
        r
    }

    #[test]
    fn the_socket_decides_who_asks() {
        let r = root();
        assert_eq!(caller(r.path(), 1000, None).unwrap(), "alice");
        assert_eq!(
            caller(r.path(), 1000, Some("alice".into())).unwrap(),
            "alice"
        );
        let e = caller(r.path(), 1000, Some("bob".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("you are alice"), "{e}");
        assert!(
            caller(r.path(), 4242, None).is_err(),
            "an unknown uid asks for nobody"
        );
        assert_eq!(caller(r.path(), 0, Some("bob".into())).unwrap(), "bob");
        assert!(caller(r.path(), 0, None).is_err());
    }

    #[test]
    fn requests_are_one_json_line_with_nothing_extra() {
        let a: Ask = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert_eq!(a, Ask::Status {});
        assert!(serde_json::from_str::<Ask>(r#"{"op":"status","user":"bob"}"#).is_err());
        assert!(serde_json::from_str::<Ask>(r#"{"op":"become_root"}"#).is_err());
        assert_eq!(
            socket_path(Path::new("/var/lib/hourglass-agent")),
            PathBuf::from("/var/lib/hourglass-agent.sock")
        );
    }
}
