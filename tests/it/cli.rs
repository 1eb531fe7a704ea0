//! Bad input at the command line: one clear line, non-zero exit, nothing overwritten.

use crate::support::*;

fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "expected failure: {}", text(out));
    let t = text(out);
    assert!(t.contains(needle), "expected {needle:?} in: {t}");
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn an_unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hourglass.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nlisen = \"x\"\n").unwrap();
    let out = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
    ]);
    fails_with(&out, "unknown config key `server.lisen`");
    let out = hourglass()
        .args([
            "cert",
            "fingerprint",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .env("HOURGLASS__STORAGE__DATADIR", "/x")
        .output()
        .unwrap();
    fails_with(
        &out,
        "HOURGLASS__STORAGE__DATADIR: unknown config key `storage.datadir`",
    );
    let out = run(&[
        "serve",
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    fails_with(&out, "cannot read config file");
}

#[test]
fn a_port_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "serve",
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    fails_with(&out, &format!("cannot listen on {addr}"));
}

#[test]
fn an_unusable_data_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    fails_with(
        &run(&["cert", "fingerprint", "--data-dir", file.to_str().unwrap()]),
        "exists but is not a directory",
    );
    let deep = dir.path().join("no/such/parent/data");
    fails_with(
        &run(&["cert", "fingerprint", "--data-dir", deep.to_str().unwrap()]),
        "cannot create data directory",
    );
    fails_with(
        &run(&[
            "audit",
            "verify",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ]),
        "no Hourglass database",
    );
}

#[test]
fn bad_certificate_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    assert!(
        run(&["cert", "fingerprint", "--data-dir", d])
            .status
            .success()
    );
    let db = data.join("hourglass.db");
    let a = hourglass::tls::generate_self_signed("a.test", T0).unwrap();
    let b = hourglass::tls::generate_self_signed("b.test", T0).unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ca, kb, junk) = (
        write("a.pem", &a.cert_pem),
        write("b.key", &b.key_pem),
        write("junk.pem", "hello"),
    );
    let ka = write("a.key", &a.key_pem);
    fails_with(
        &run(&[
            "cert",
            "import",
            "--data-dir",
            d,
            "--cert",
            &ca,
            "--key",
            &kb,
        ]),
        "b.key: the private key does not match the certificate",
    );
    fails_with(
        &run(&[
            "cert",
            "import",
            "--data-dir",
            d,
            "--cert",
            &junk,
            "--key",
            &ka,
        ]),
        "junk.pem: no CERTIFICATE block found",
    );
    fails_with(
        &run(&[
            "cert",
            "import",
            "--data-dir",
            d,
            "--cert",
            &ca,
            "--key",
            &junk,
        ]),
        "junk.pem: no usable private key",
    );
    fails_with(
        &run(&[
            "cert",
            "import",
            "--data-dir",
            d,
            "--cert",
            "/nonexistent.pem",
            "--key",
            &ka,
        ]),
        "cannot read certificate file /nonexistent.pem",
    );
    let expired = hourglass::tls::generate_self_signed(
        "old.test",
        hourglass::clock::Timestamp(1_000_000_000_000),
    )
    .unwrap();
    let (ce, ke) = (
        write("old.pem", &expired.cert_pem),
        write("old.key", &expired.key_pem),
    );
    fails_with(
        &run(&[
            "cert",
            "import",
            "--data-dir",
            d,
            "--cert",
            &ce,
            "--key",
            &ke,
        ]),
        "the certificate expired on",
    );
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM tls_certificates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "nothing installed");
}

#[test]
fn a_bad_syslog_address_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = hourglass()
        .args([
            "cert",
            "fingerprint",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .env("HOURGLASS__SYSLOG__ADDRESS", "siem.example:514")
        .output()
        .unwrap();
    fails_with(
        &out,
        "syslog.address must look like udp://HOST:PORT or tcp://HOST:PORT",
    );
}

/// `hourglass demo`: a running appliance with two customer tenants, their simulated
/// workstations enrolled and a request waiting in each; it stops cleanly on SIGTERM.
#[test]
fn the_demo_seeds_tenants_workstations_and_requests() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut child = hourglass()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("Press Ctrl-C");
        out.push(line);
        if done {
            break;
        }
    }
    let said = out.join("\n");
    assert!(
        said.contains("Sign in as admin@demo.test: open https://127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("/enroll/"), "{said}");
    assert!(
        said.contains("Acme Corp") && said.contains("Globex"),
        "{said}"
    );
    assert_eq!(
        said.matches("3 simulated workstations, 1 request waiting")
            .count(),
        2,
        "{said}"
    );
    let st = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success(), "a clean stop");

    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM devices WHERE status = 'active'"),
        6
    );
    assert_eq!(
        count("SELECT count(*) FROM requests WHERE state = 'pending'"),
        2
    );
    assert_eq!(count("SELECT count(*) FROM tenants"), 3);

    // An existing database is never seeded over.
    let o = run(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    fails_with(&o, "needs an empty data directory");
}

#[test]
fn a_backup_directory_that_cannot_take_files_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let out = hourglass()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ])
        .env("HOURGLASS__BACKUP__DIR", blocker.join("backups"))
        .output()
        .unwrap();
    fails_with(&out, "backup.dir");
}

/// `agent describe` shows what policies match on; a Debian program on merged /usr is found in
/// the package database under the name dpkg recorded (/bin/ls for /usr/bin/ls).
#[test]
fn agent_describe_names_a_debian_programs_package() {
    let state = tempfile::tempdir().unwrap();
    let out = run(&[
        "agent",
        "describe",
        "ls",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let app: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(app["product"], "coreutils", "{app}");
    assert_eq!(app["verified"], true, "{app}");
    assert_eq!(app["signer"], "Debian");
    assert_eq!(app["sha256"].as_str().unwrap().len(), 64);
}
