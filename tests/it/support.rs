//! Shared harness: an in-process appliance on an ephemeral port with a manual clock, and
//! helpers for running the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourglass::app::{self, Running};
use hourglass::clock::{Clock, Timestamp};
use hourglass::config::Config;
use hourglass::service::Ctx;

/// 2026-11-23T00:00:00Z: tests start the manual clock here.
pub const T0: Timestamp = Timestamp(1_795_392_000_000);

pub struct TestServer {
    pub cfg: Config,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub fingerprint: String,
    pub clock: Clock,
    pub running: Option<Running>,
}

pub fn test_config(data_dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.storage.data_dir = data_dir.to_path_buf();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls.hostname = "hourglass.test".into();
    // Stopping a test server should not wait long for idle agent connections.
    cfg.server.shutdown_timeout_secs = 2;
    cfg
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(&dir.path().join("data"));
        adjust(&mut cfg);
        let clock = Clock::manual(T0);
        let appliance = app::open(cfg.clone(), clock.clone()).unwrap();
        let fingerprint = appliance.fingerprint.clone();
        let running = app::start(appliance).await.unwrap();
        let base = format!("https://{}", running.portal_addrs[0]);
        cfg.server.listen = running.portal_addrs[0].to_string();
        TestServer {
            cfg,
            dir,
            base,
            fingerprint,
            clock,
            running: Some(running),
        }
    }

    pub fn ctx(&self) -> &Ctx {
        &self.running.as_ref().unwrap().ctx
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn client(&self) -> reqwest::Client {
        hourglass::agent::client::pinned_client(&self.fingerprint).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Lets the manual clock follow real time from now on (tests with real agent processes,
    /// whose own clocks run); it can still be moved on top of that.
    pub fn follow_real_time(&self) {
        let clock = self.clock.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
            let mut last = std::time::Instant::now();
            loop {
                every.tick().await;
                let now = std::time::Instant::now();
                clock.advance_millis((now - last).as_millis() as i64);
                last = now;
            }
        });
    }

    /// Starts the stopped server again on the same address, data and clock.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "stop it first");
        let appliance = app::open(self.cfg.clone(), self.clock.clone()).unwrap();
        self.running = Some(app::start(appliance).await.unwrap());
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            // Bounded here too: a stop that hangs fails its test instead of the whole run.
            tokio::time::timeout(std::time::Duration::from_secs(60), r.shutdown())
                .await
                .expect("the server did not stop within 60 s")
                .unwrap();
        }
    }
}

/// The scope of a token created for a test that acts as a fully trusted script: sensitive
/// actions allowed, for 30 days (the longest such a token lives).
pub fn sensitive_scope() -> hourglass::service::tokens::Scope {
    hourglass::service::tokens::Scope {
        sensitive: true,
        expires_in_days: Some(30),
    }
}

/// The real `hourglass` binary.
pub fn hourglass() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hourglass"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("HOURGLASS__") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(args: &[&str]) -> Output {
    hourglass().args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn sha256_file(p: &Path) -> String {
    hourglass::crypto::sha256_hex(&std::fs::read(p).unwrap())
}

/// An SMTP server on loopback, in this process: it speaks enough of RFC 5321 for the
/// appliance's mailer (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) over a real TCP socket and
/// hands over every message as received (headers and body, dot-unstuffed).
pub struct SmtpSink {
    pub port: u16,
    mails: std::sync::mpsc::Receiver<String>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mails) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let tx = tx.clone();
                std::thread::spawn(move || smtp_session(conn, &tx));
            }
        });
        SmtpSink { port, mails }
    }

    /// The next mail (empty when none came within 20 s). Waits without blocking the
    /// runtime, so the appliance in this process can send meanwhile.
    pub async fn next_mail(&self) -> String {
        for _ in 0..400 {
            match self.mails.try_recv() {
                Ok(mail) => return mail,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            }
        }
        String::new()
    }
}

fn smtp_session(conn: std::net::TcpStream, mails: &std::sync::mpsc::Sender<String>) {
    use std::io::{BufRead, BufReader, Write};
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut say = |line: &str| w.write_all(format!("{line}\r\n").as_bytes()).is_ok();
    say("220 sink ESMTP");
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        line.clear();
        let ok = match verb.as_str() {
            "EHLO" | "HELO" => say("250 sink"),
            "MAIL" | "RCPT" | "RSET" | "NOOP" => say("250 ok"),
            "QUIT" => {
                say("221 bye");
                return;
            }
            "DATA" => {
                say("354 end with <CRLF>.<CRLF>");
                let mut mail = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    mail.push_str(l.strip_prefix('.').unwrap_or(l));
                    mail.push('\n');
                }
                let _ = mails.send(mail);
                say("250 queued")
            }
            _ => say("502 not implemented"),
        };
        if !ok {
            return;
        }
    }
}

/// Every audit entry of `event` (details as JSON).
pub async fn audit_details(s: &TestServer, event: &'static str) -> Vec<serde_json::Value> {
    audit_entries(s, event)
        .await
        .into_iter()
        .map(|e| serde_json::from_str(&e.details).unwrap_or_default())
        .collect()
}

/// Every audit entry of `event`, newest first (at most 100).
pub async fn audit_entries(
    s: &TestServer,
    event: &'static str,
) -> Vec<hourglass::model::audit::Entry> {
    s.ctx()
        .db
        .read(move |r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some(event.into()),
                    limit: 100,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// /metrics as text.
pub async fn metrics_text(s: &TestServer) -> String {
    s.client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled metric on /metrics (0 when absent).
pub async fn metric(s: &TestServer, name: &str) -> f64 {
    metrics_text(s)
        .await
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .map_or(0.0, |v| v.parse().unwrap())
}
