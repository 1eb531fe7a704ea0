//! Windows: end users ask through the daemon's named pipe, the counterpart of the Unix
//! socket (`agent::local`). Windows says who is at the other end (the client process's
//! token, `win32::pipe_client`); the request is then handled exactly as on Linux.
//! One request line, then notes and one answer line, per connection. run-elevated starts the
//! program in the caller's own session (`win32::launch_elevated`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::local::{Ask, MAX_LINE, Who, answer_long, answer_short, for_whom, handle_for};
use crate::error::{Error, Result};

/// One pipe per state folder: `\\.\pipe\hourglass-agent-<first 8 bytes of its hash>`.
pub fn pipe_name(state_dir: &Path) -> String {
    let h = crate::crypto::sha256(state_dir.to_string_lossy().to_lowercase().as_bytes());
    format!(r"\\.\pipe\hourglass-agent-{}", hex::encode(&h[..8]))
}

/// Serves until the daemon stops. With `fake` (the `fake-sam` back end: tests, trials)
/// run-elevated starts programs as the agent's own account instead of in a user's session.
pub async fn serve(name: String, dir: PathBuf, fake: bool) -> Result<()> {
    let mut server = super::win32::create_pipe(&name, true)
        .map_err(|e| Error::startup(format!("cannot open the pipe {name}: {e}")))?;
    loop {
        if let Err(e) = server.connect().await {
            // A client that vanished while connecting: offer a fresh instance.
            eprintln!("hourglass agent: pipe connection failed: {e}");
            server = super::win32::create_pipe(&name, false)?;
            continue;
        }
        let client = server;
        server = super::win32::create_pipe(&name, false)?;
        let dir = dir.clone();
        tokio::spawn(async move {
            if let Err(e) = one(client, dir, fake).await {
                eprintln!("hourglass agent: a request on the pipe failed: {e}");
            }
        });
    }
}

async fn one(
    pipe: tokio::net::windows::named_pipe::NamedPipeServer,
    dir: PathBuf,
    fake: bool,
) -> Result<()> {
    use std::os::windows::io::AsRawHandle;
    let who = super::win32::pipe_client(pipe.as_raw_handle());
    let (r, mut w) = tokio::io::split(pipe);
    let mut reader = tokio::io::BufReader::new(r.take(MAX_LINE as u64 + 1));
    let mut line = String::new();
    // A client that never finishes its line is dropped, not waited for.
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    let request = match (who, read) {
        (Err(e), _) => Err(Error::Forbidden(format!(
            "cannot tell who is asking: {e:?}"
        ))),
        (_, Ok(Ok(_))) if line.len() > MAX_LINE => Err(Error::validation("request", "too long")),
        (Ok(client), Ok(Ok(_))) => serde_json::from_str::<Ask>(line.trim())
            .map(|a| (client, a))
            .map_err(|e| Error::validation("request", e)),
        // A client that went away mid-request gets no answer and changes nothing.
        (_, Ok(Err(e))) => Err(e.into()),
        (_, Err(_)) => Err(Error::validation("request", "not received in time")),
    };
    match request {
        Ok(((user, pid), ask @ Ask::RunElevated { .. })) => {
            let r = reader.into_inner().into_inner();
            answer_long(r, &mut w, move |gone, say| {
                in_session(&dir, &user, pid, fake, ask, gone, say)
            })
            .await
        }
        Ok(((user, _), ask)) => answer_short(&mut w, move || handle_for(&dir, &user, ask)).await,
        Err(e) => answer_short(&mut w, move || Err(e)).await,
    }
}

/// run-elevated for a pipe client: the service reads and stages the program itself (into its
/// own folder, so what was hashed is what runs) and starts it in the client's session.
fn in_session(
    dir: &std::path::Path,
    user: &str,
    pid: u32,
    fake: bool,
    ask: Ask,
    gone: &std::sync::atomic::AtomicBool,
    say: &mut dyn FnMut(String),
) -> Result<serde_json::Value> {
    let Ask::RunElevated {
        program,
        args,
        cwd,
        user: named,
        elevation,
        ..
    } = ask
    else {
        return Err(Error::validation("request", "not run-elevated"));
    };
    let user = for_whom(&Who::User(user.to_string()), named)?;
    let path = PathBuf::from(&program);
    if !path.is_absolute() {
        return Err(Error::validation("program", "give the program's full path"));
    }
    let staged = super::elevate::stage(&path, dir)
        .map_err(|e| Error::validation("program", format!("{program}: {e}")))?;
    let cwd = Some(PathBuf::from(&cwd))
        .filter(|c| c.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut launch = |p: &std::path::Path| -> Result<i32> {
        if fake {
            let child = std::process::Command::new(p)
                .args(&args)
                .current_dir(&cwd)
                .stdin(std::process::Stdio::null())
                .spawn()?;
            return super::runas::wait_or_end(child, gone);
        }
        super::win32::launch_elevated(pid, p, &args, &cwd, gone)
            .map_err(|e| Error::startup(format!("cannot start {}: {e:?}", p.display())))
    };
    let outcome = super::runas::run(dir, &user, &path, &staged, &elevation, say, &mut launch)?;
    Ok(serde_json::to_value(outcome)?)
}

/// The user's side: one request, one answer (after notes, shown with `say`), within
/// `timeout` when one is given.
pub fn ask_with(
    name: &str,
    ask: &Ask,
    timeout: Option<Duration>,
    say: &mut dyn FnMut(&str),
) -> Result<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    let mut line = serde_json::to_vec(ask)?;
    line.push(b'\n');
    rt.block_on(async {
        let pipe = tokio::net::windows::named_pipe::ClientOptions::new()
            .open(name)
            .map_err(|e| {
                Error::startup(format!(
                    "cannot reach the Hourglass agent at {name} ({e}): is the Hourglass service running?"
                ))
            })?;
        let talk = async {
            let (r, mut w) = tokio::io::split(pipe);
            w.write_all(&line).await?;
            w.flush().await?;
            let mut lines = tokio::io::BufReader::new(r.take(1 << 20));
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l).await? == 0 {
                    return Err(Error::startup("the agent hung up without an answer"));
                }
                if let Some(answer) = super::local::read_line(&l, say) {
                    return answer;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, talk).await.map_err(|_| {
                Error::startup("the Hourglass agent did not answer in time")
            })?,
            None => talk.await,
        }
    })
}

/// One request, one answer, within a minute.
pub fn ask(name: &str, ask: &Ask) -> Result<serde_json::Value> {
    ask_with(name, ask, Some(Duration::from_secs(60)), &mut |_| {})
}
