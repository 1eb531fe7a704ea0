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
pub(super) const MAX_LINE: usize = 8 * 1024;

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

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Answer {
    ok: bool,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    error: String,
}

impl From<Result<serde_json::Value>> for Answer {
    fn from(r: Result<serde_json::Value>) -> Self {
        match r {
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
        }
    }
}

impl Answer {
    /// The client's reading of the daemon's answer line.
    pub(super) fn read(line: &str) -> Result<serde_json::Value> {
        let a: Answer = serde_json::from_str(line.trim())
            .map_err(|e| Error::startup(format!("the agent answered something unreadable: {e}")))?;
        if a.ok {
            Ok(a.value)
        } else {
            Err(Error::startup(a.error))
        }
    }
}

/// Who is asking, as the socket (peer uid) or the pipe (client token) says.
#[derive(Clone, Debug, PartialEq)]
pub enum Who {
    /// May ask in anyone's name; status and end act on the machine's last request.
    Root,
    User(String),
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

/// Who a uid is on this workstation.
pub fn who_is(root: &Path, uid: u32) -> Result<Who> {
    if uid == 0 {
        return Ok(Who::Root);
    }
    name_of(root, uid).map(Who::User).ok_or_else(|| {
        Error::Forbidden(format!(
            "uid {uid} is not a local account of this workstation"
        ))
    })
}

/// Who a request is for: the caller; root may name someone else.
fn for_whom(who: &Who, named: Option<String>) -> Result<String> {
    match (who, named.filter(|n| !n.is_empty())) {
        (Who::Root, Some(n)) => Ok(n),
        (Who::Root, None) => Err(Error::validation("user", "root must say which user asks")),
        (Who::User(me), Some(n)) if !n.eq_ignore_ascii_case(me) => Err(Error::Forbidden(format!(
            "--user {n}: you are {me}; only root may ask in another user's name"
        ))),
        (Who::User(me), _) => Ok(me.clone()),
    }
}

/// The daemon's answer to one request (blocking: it talks to the appliance).
pub fn handle(dir: &Path, who: &Who, ask: Ask) -> Result<serde_json::Value> {
    let own = || match who {
        Who::Root => None,
        Who::User(u) => Some(u.clone()),
    };
    match ask {
        Ask::RequestAdmin {
            minutes,
            reason,
            ticket,
            user,
        } => requests::request(dir, for_whom(who, user)?, minutes, reason, ticket, "admin"),
        Ask::Extend {
            minutes,
            reason,
            user,
        } => requests::request_own_extension(dir, &for_whom(who, user)?, minutes, reason),
        Ask::Status {} => requests::status_of(dir, &own()),
        Ask::EndSession {} => requests::end_of(dir, &own()),
    }
}

/// Windows: the pipe's client is always an account by name.
#[cfg(windows)]
pub(super) fn handle_for(dir: &Path, user: &str, ask: Ask) -> Result<serde_json::Value> {
    handle(dir, &Who::User(user.to_string()), ask)
}

#[cfg(unix)]
pub use unix::{ask, serve};

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    use super::{Answer, Ask, MAX_LINE, handle, who_is};
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
                // Out of file descriptors, say: wait a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(200)).await;
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
                Ok(ask) => {
                    tokio::task::spawn_blocking(move || handle(&dir, &who_is(&root, uid)?, ask))
                        .await
                        .map_err(Error::internal)
                        .and_then(|r| r)
                }
                Err(e) => Err(Error::validation("request", e)),
            },
            // A client that went away mid-request gets no answer and changes nothing.
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::validation("request", "not received in time")),
        };
        let a = Answer::from(answer);
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
        Answer::read(&answer)
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

    fn caller(root: &Path, uid: u32, named: Option<String>) -> Result<String> {
        for_whom(&who_is(root, uid)?, named)
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
        // On Windows names compare as Windows does.
        assert_eq!(
            for_whom(&Who::User("Anna".into()), Some("anna".into())).unwrap(),
            "Anna"
        );
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
