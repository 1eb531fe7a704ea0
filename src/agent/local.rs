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
    /// One program with administrator rights (`runas`). On Linux the program and the
    /// caller's terminal come along as descriptors (SCM_RIGHTS): the daemon reads the program
    /// through the caller's own descriptor, so nobody elevates a file they could not read.
    RunElevated {
        /// Absolute, as the caller resolved it on their PATH.
        program: String,
        args: Vec<String>,
        cwd: String,
        /// TERM and LANG are the only parts of the caller's environment kept.
        term: Option<String>,
        lang: Option<String>,
        user: Option<String>,
        elevation: super::runas::Elevation,
    },
}

/// A progress line the daemon sends ahead of its answer ("waiting for a decision…").
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    note: String,
}

/// One line from the daemon: a note to show, or its answer.
pub(super) fn read_line(
    line: &str,
    say: &mut dyn FnMut(&str),
) -> Option<Result<serde_json::Value>> {
    match serde_json::from_str::<Note>(line.trim()) {
        Ok(n) => {
            say(&n.note);
            None
        }
        Err(_) => Some(Answer::read(line)),
    }
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
pub(super) fn for_whom(who: &Who, named: Option<String>) -> Result<String> {
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
        Ask::RunElevated { .. } => Err(Error::validation(
            "request",
            "run-elevated is answered on its own connection",
        )),
    }
}

async fn write_answer<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    answer: Result<serde_json::Value>,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut out = serde_json::to_vec(&Answer::from(answer))?;
    out.push(b'\n');
    w.write_all(&out).await?;
    Ok(())
}

/// Answers a short request: at most a minute of work on a blocking thread.
pub(super) async fn answer_short<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    work: impl FnOnce() -> Result<serde_json::Value> + Send + 'static,
) -> Result<()> {
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(work),
    )
    .await;
    let answer = match answer {
        Ok(joined) => joined.map_err(Error::internal).and_then(|r| r),
        Err(_) => Err(Error::startup("the agent could not answer within a minute")),
    };
    write_answer(w, answer).await
}

/// Answers a request that lasts as long as a person or a program takes (run-elevated):
/// what the work says goes out as note lines ahead of the answer, and `gone` tells the work
/// when the client hangs up (Ctrl-C), so the program it runs is ended with it.
pub(super) async fn answer_long<R, W, F>(mut r: R, w: &mut W, work: F) -> Result<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin,
    F: FnOnce(&std::sync::atomic::AtomicBool, &mut dyn FnMut(String)) -> Result<serde_json::Value>
        + Send
        + 'static,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gone = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let g = gone.clone();
    let job = tokio::task::spawn_blocking(move || {
        let mut say = |m: String| {
            let _ = tx.send(m);
        };
        work(&g, &mut say)
    });
    let g = gone.clone();
    let watch = tokio::spawn(async move {
        let mut b = [0u8; 64];
        // The client sends nothing more: end of stream (or an error) means it went away.
        while let Ok(n) = r.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
        g.store(true, Ordering::Relaxed);
    });
    while let Some(note) = rx.recv().await {
        let mut line = serde_json::to_vec(&Note { note })?;
        line.push(b'\n');
        if w.write_all(&line).await.is_err() {
            gone.store(true, Ordering::Relaxed);
        }
    }
    let answer = job.await.map_err(Error::internal).and_then(|r| r);
    watch.abort();
    write_answer(w, answer).await
}

/// Windows: the pipe's client is always an account by name.
#[cfg(windows)]
pub(super) fn handle_for(dir: &Path, user: &str, ask: Ask) -> Result<serde_json::Value> {
    handle(dir, &Who::User(user.to_string()), ask)
}

#[cfg(unix)]
pub use unix::{ask, ask_with, serve};

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
    use std::mem::MaybeUninit;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use rustix::net::{
        RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
        SendAncillaryMessage, SendFlags,
    };
    use tokio::io::Interest;
    use tokio::net::UnixStream;

    use super::{Ask, MAX_LINE, Who, answer_long, answer_short, handle, who_is, write_answer};
    use crate::agent::{elevate, runas};
    use crate::error::{Error, Result};

    /// run-elevated passes four descriptors: the program, stdin, stdout, stderr.
    const FDS: usize = 4;

    use crate::agent::os::SECURE_PATH;

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
                let _ = one(stream, dir, root).await;
            });
        }
    }

    /// The request line and any descriptors sent with it.
    async fn read_request(s: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        let (mut line, mut fds) = (Vec::new(), Vec::new());
        loop {
            s.readable().await?;
            let mut buf = [0u8; 4096];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS))];
            let got = s.try_io(Interest::READABLE, || {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let r = rustix::net::recvmsg(
                    s,
                    &mut [IoSliceMut::new(&mut buf)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )?;
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = m {
                        fds.extend(received);
                    }
                }
                Ok(r.bytes)
            });
            match got {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
                // A client that went away mid-request gets no answer and changes nothing.
                Ok(0) => return Err(Error::validation("request", "the client hung up")),
                Ok(n) => line.extend_from_slice(&buf[..n]),
            }
            if line.len() > MAX_LINE {
                return Err(Error::validation("request", "too long"));
            }
            if line.contains(&b'\n') {
                return Ok((line, fds));
            }
        }
    }

    async fn one(stream: UnixStream, dir: PathBuf, root: PathBuf) -> Result<()> {
        let uid = stream.peer_cred()?.uid();
        // A client that never finishes its line is dropped, not waited for.
        let got = tokio::time::timeout(Duration::from_secs(10), read_request(&stream)).await;
        let (r, mut w) = stream.into_split();
        let request = match got {
            Ok(Ok((line, fds))) => serde_json::from_slice::<Ask>(line.trim_ascii())
                .map(|a| (a, fds))
                .map_err(|e| Error::validation("request", e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::validation("request", "not received in time")),
        };
        match request {
            Ok((ask @ Ask::RunElevated { .. }, fds)) => {
                answer_long(r, &mut w, move |gone, say| {
                    with_terminal(&dir, &who_is(&root, uid)?, ask, fds, gone, say)
                })
                .await
            }
            Ok((ask, _)) => {
                answer_short(&mut w, move || handle(&dir, &who_is(&root, uid)?, ask)).await
            }
            Err(e) => write_answer(&mut w, Err(e)).await,
        }
    }

    /// run-elevated for a socket client: the program is read through the caller's descriptor
    /// and runs as root with the caller's terminal, in their working directory, with a clean
    /// environment (sudo's `env_reset`).
    fn with_terminal(
        dir: &Path,
        who: &Who,
        ask: Ask,
        fds: Vec<OwnedFd>,
        gone: &AtomicBool,
        say: &mut dyn FnMut(String),
    ) -> Result<serde_json::Value> {
        use std::os::unix::fs::MetadataExt;
        let Ask::RunElevated {
            program,
            args,
            cwd,
            term,
            lang,
            user,
            elevation,
        } = ask
        else {
            return Err(Error::validation("request", "not run-elevated"));
        };
        let [file, stdin, stdout, stderr]: [OwnedFd; FDS] = fds.try_into().map_err(|_| {
            Error::validation(
                "request",
                "run-elevated passes the program and the terminal (4 descriptors)",
            )
        })?;
        let asker = super::for_whom(who, user)?;
        let path = PathBuf::from(&program);
        if !path.is_absolute() {
            return Err(Error::validation("program", "give the program's full path"));
        }
        let mut file = std::fs::File::from(file);
        let opened = file.metadata()?;
        let named = std::fs::metadata(&path)
            .map_err(|e| Error::validation("program", format!("{program}: {e}")))?;
        if !opened.is_file() {
            return Err(Error::validation(
                "program",
                format!("{program}: not a file"),
            ));
        }
        if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
            return Err(Error::Forbidden(format!(
                "{program} was replaced while asking; try again"
            )));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let staged = elevate::stage_bytes(&path, bytes, elevate::only_root_can_change(&path), dir)?;
        let cwd = Some(PathBuf::from(&cwd))
            .filter(|c| c.is_absolute() && c.is_dir())
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut stdio = Some((stdin, stdout, stderr));
        let mut launch = |p: &Path| -> Result<i32> {
            let (i, o, e) = stdio
                .take()
                .ok_or_else(|| Error::startup("the program was already started"))?;
            let mut c = std::process::Command::new(p);
            c.args(&args)
                .env_clear()
                .env("PATH", SECURE_PATH)
                .env("HOME", "/root")
                .env("USER", "root")
                .env("LOGNAME", "root")
                .env("HOURGLASS_USER", &asker)
                .current_dir(&cwd)
                .stdin(i)
                .stdout(o)
                .stderr(e);
            for (k, v) in [("TERM", &term), ("LANG", &lang)] {
                if let Some(v) = plain_env(v) {
                    c.env(k, v);
                }
            }
            runas::wait_or_end(c.spawn()?, gone)
        };
        let outcome = runas::run(dir, &asker, &path, &staged, &elevation, say, &mut launch)?;
        Ok(serde_json::to_value(outcome)?)
    }

    /// TERM and LANG pass only when they look like what they are.
    fn plain_env(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
        })
    }

    /// The user's side: one request, one answer (after any notes, shown with `say`), with
    /// `fds` sent along with the request line.
    pub fn ask_with(
        path: &Path,
        ask: &Ask,
        fds: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
        say: &mut dyn FnMut(&str),
    ) -> Result<serde_json::Value> {
        let s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
            Error::startup(format!(
                "cannot reach the Hourglass agent at {} ({e}): is `hourglass agent run` running?",
                path.display()
            ))
        })?;
        s.set_read_timeout(timeout)?;
        let mut line = serde_json::to_vec(ask)?;
        line.push(b'\n');
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Error::startup("too many descriptors for one request"));
        }
        let sent =
            rustix::net::sendmsg(&s, &[IoSlice::new(&line)], &mut control, SendFlags::empty())
                .map_err(std::io::Error::from)?;
        (&s).write_all(&line[sent..])?;
        let mut lines = BufReader::new(s.take(1 << 20));
        loop {
            let mut l = String::new();
            if lines.read_line(&mut l)? == 0 {
                return Err(Error::startup("the agent hung up without an answer"));
            }
            if let Some(answer) = super::read_line(&l, say) {
                return answer;
            }
        }
    }

    /// One request, one answer, within a minute.
    pub fn ask(path: &Path, ask: &Ask) -> Result<serde_json::Value> {
        ask_with(path, ask, &[], Some(Duration::from_secs(60)), &mut |_| {})
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
