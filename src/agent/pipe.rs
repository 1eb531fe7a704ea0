//! Windows: end users ask through the daemon's named pipe, the counterpart of the Unix
//! socket (`agent::local`). Windows says who is at the other end (the client process's
//! token, `win32::pipe_client_user`); the request is then handled exactly as on Linux.
//! One request line, one answer line, per connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::local::{Answer, Ask, MAX_LINE, handle_for};
use crate::error::{Error, Result};

/// One pipe per state folder: `\\.\pipe\hourglass-agent-<first 8 bytes of its hash>`.
pub fn pipe_name(state_dir: &Path) -> String {
    let h = crate::crypto::sha256(state_dir.to_string_lossy().to_lowercase().as_bytes());
    format!(r"\\.\pipe\hourglass-agent-{}", hex::encode(&h[..8]))
}

pub async fn serve(name: String, dir: PathBuf) -> Result<()> {
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
            match tokio::time::timeout(Duration::from_secs(60), one(client, dir)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("hourglass agent: a request on the pipe failed: {e}"),
                Err(_) => eprintln!("hourglass agent: a request on the pipe timed out"),
            }
        });
    }
}

async fn one(pipe: tokio::net::windows::named_pipe::NamedPipeServer, dir: PathBuf) -> Result<()> {
    use std::os::windows::io::AsRawHandle;
    let who = super::win32::pipe_client_user(pipe.as_raw_handle());
    let (r, mut w) = tokio::io::split(pipe);
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(r.take(MAX_LINE as u64 + 1)).read_line(&mut line),
    )
    .await;
    let answer = match (who, read) {
        (Err(e), _) => Err(Error::Forbidden(format!(
            "cannot tell who is asking: {e:?}"
        ))),
        (_, Ok(Ok(_))) if line.len() > MAX_LINE => Err(Error::validation("request", "too long")),
        (Ok(user), Ok(Ok(_))) => match serde_json::from_str::<Ask>(line.trim()) {
            Ok(ask) => tokio::task::spawn_blocking(move || handle_for(&dir, &user, ask))
                .await
                .map_err(Error::internal)
                .and_then(|r| r),
            Err(e) => Err(Error::validation("request", e)),
        },
        // A client that went away mid-request gets no answer and changes nothing.
        (_, Ok(Err(e))) => Err(e.into()),
        (_, Err(_)) => Err(Error::validation("request", "not received in time")),
    };
    let mut out = serde_json::to_vec(&Answer::from(answer))?;
    out.push(b'\n');
    w.write_all(&out).await?;
    Ok(())
}

/// The user's side: one request, one answer, within a minute.
pub fn ask(name: &str, ask: &Ask) -> Result<serde_json::Value> {
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
            let mut answer = String::new();
            tokio::io::BufReader::new(r.take(1 << 20))
                .read_line(&mut answer)
                .await?;
            Ok::<_, Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(60), talk)
            .await
            .map_err(|_| Error::startup("the Hourglass agent did not answer within a minute"))??;
        Answer::read(&answer)
    })
}
