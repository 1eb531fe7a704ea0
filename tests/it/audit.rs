//! The audit chain on a real database file: append-only triggers, `hourglass audit verify`
//! after tampering, and fail-closed writes (AUD-01, AUD-03).

use hourglass::clock::Timestamp;
use hourglass::model::audit::Event;
use hourglass::service::audit::Audit;
use hourglass::store::Db;

use crate::support::*;

/// A data directory whose log holds `n` entries besides the first-start ones.
fn data_dir_with_entries(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(&dir.path().join("data"));
    let appliance = hourglass::app::open(cfg, hourglass::clock::Clock::manual(T0)).unwrap();
    let db = &appliance.ctx.db;
    for i in 0..n {
        db.write_blocking(|tx| {
            Audit::new(Event::ConfigChanged, Timestamp(T0.0 + i as i64))
                .details(serde_json::json!({"i": i}))
                .append(tx)
                .map(|_| ())
        })
        .unwrap();
    }
    let path = dir.path().join("data");
    (dir, path)
}

fn verify(data: &std::path::Path) -> (i32, String) {
    let o = run(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    (o.status.code().unwrap(), text(&o))
}

/// What an attacker with the file can do: drop the triggers, then edit.
fn tamper(data: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
}

#[test]
fn verify_passes_on_an_untouched_log() {
    let (_d, data) = data_dir_with_entries(5);
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit chain OK: 6 entries verified"), "{out}");
}

#[test]
fn the_log_refuses_update_and_delete_through_sql() {
    let (_d, data) = data_dir_with_entries(2);
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    let e = c
        .execute("UPDATE audit SET details = '{}' WHERE seq = 2", [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("append-only"), "{e}");
    let e = c
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("append-only"), "{e}");
}

#[test]
fn verify_names_the_first_bad_entry_after_an_edit() {
    let (_d, data) = data_dir_with_entries(6);
    tamper(
        &data,
        "UPDATE audit SET details = '{\"i\":99}' WHERE seq = 4;",
    );
    let (code, out) = verify(&data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at sequence 4"), "{out}");
}

#[test]
fn verify_names_the_gap_after_a_deletion() {
    let (_d, data) = data_dir_with_entries(6);
    tamper(&data, "DELETE FROM audit WHERE seq = 3;");
    let (code, out) = verify(&data);
    assert_eq!(code, 1);
    assert!(out.contains("BROKEN at sequence 3"), "{out}");
}

#[test]
fn verify_notices_a_deleted_tail() {
    let (_d, data) = data_dir_with_entries(6);
    tamper(&data, "DELETE FROM audit WHERE seq = 7;");
    let (code, out) = verify(&data);
    assert_eq!(code, 1);
    assert!(
        out.contains("BROKEN at sequence 7") && out.contains("missing at the end"),
        "{out}"
    );
}

#[test]
fn verify_notices_an_inserted_entry() {
    let (_d, data) = data_dir_with_entries(6);
    // Make room at 4 and insert a forged copy of entry 4 with different content.
    tamper(
        &data,
        "UPDATE audit SET seq = seq + 1000 WHERE seq >= 4;
         UPDATE audit SET seq = seq - 999 WHERE seq >= 1004;
         INSERT INTO audit SELECT 4, 'forged', at, event, outcome, tenant_id, actor_kind, actor_id, target_kind,
             target_id, device_id, request_identifier, ticket_identifier, ip, http_request_id, '{\"forged\":1}', prev_hash, hash
         FROM audit WHERE seq = 5;",
    );
    let (code, out) = verify(&data);
    assert_eq!(code, 1);
    assert!(out.contains("BROKEN at sequence 4"), "{out}");
}

#[test]
fn verify_notices_a_reorder() {
    let (_d, data) = data_dir_with_entries(6);
    tamper(
        &data,
        "UPDATE audit SET seq = 1000 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = 5;
         UPDATE audit SET seq = 5 WHERE seq = 1000;",
    );
    let (code, out) = verify(&data);
    assert_eq!(code, 1);
    assert!(out.contains("BROKEN at sequence 3"), "{out}");
}

#[test]
fn an_audit_write_that_fails_takes_the_change_with_it() {
    let (_d, data) = data_dir_with_entries(0);
    let (db, _) = Db::open(
        &data.join("hourglass.db"),
        std::time::Duration::from_secs(5),
        2,
    )
    .unwrap();
    let crypto =
        hourglass::crypto::Crypto::load_or_create(&data.join("master.key"), false).unwrap();
    let before = hourglass::service::certificates::active(&db)
        .unwrap()
        .unwrap();
    {
        let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
        c.execute_batch("CREATE TRIGGER audit_fail BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;")
            .unwrap();
    }
    let other = hourglass::tls::generate_self_signed("other.test", T0).unwrap();
    let r =
        hourglass::service::certificates::import(&db, &crypto, &other.cert_pem, &other.key_pem, T0);
    assert!(r.is_err(), "the import must fail with its audit entry");
    let after = hourglass::service::certificates::active(&db)
        .unwrap()
        .unwrap();
    assert_eq!(before.id, after.id, "the certificate did not change");
}

#[test]
fn server_start_and_configuration_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = test_config(&data);
    let clock = hourglass::clock::Clock::manual(T0);
    let rt = actix_web::rt::System::new();
    let entries = |db: &Db| {
        db.read_blocking(|r| hourglass::store::audit::list(r, &Default::default()))
            .unwrap()
    };
    rt.block_on(async {
        let a = hourglass::app::open(cfg.clone(), clock.clone()).unwrap();
        let running = hourglass::app::start(a).await.unwrap();
        let db = running.ctx.db.clone();
        running.shutdown().await.unwrap();
        let events: Vec<String> = entries(&db).into_iter().map(|(_, e)| e.event).collect();
        assert!(
            events.contains(&"sys_startup".to_string())
                && events.contains(&"sys_config_changed".to_string()),
            "{events:?}"
        );

        // Same configuration: a start, no change entry.
        let a = hourglass::app::open(cfg.clone(), clock.clone()).unwrap();
        let running = hourglass::app::start(a).await.unwrap();
        running.shutdown().await.unwrap();
        let changes = entries(&db)
            .into_iter()
            .filter(|(_, e)| e.event == "sys_config_changed")
            .count();
        assert_eq!(changes, 1);

        cfg.jobs.sweep_seconds = 7;
        let a = hourglass::app::open(cfg.clone(), clock.clone()).unwrap();
        let running = hourglass::app::start(a).await.unwrap();
        running.shutdown().await.unwrap();
        let latest = entries(&db)
            .into_iter()
            .find(|(_, e)| e.event == "sys_config_changed")
            .unwrap()
            .1;
        assert!(
            latest.details.contains("jobs.sweep_seconds")
                && latest.details.contains("\"new\":\"7\""),
            "{}",
            latest.details
        );
        assert!(
            !latest.details.contains("server.listen"),
            "only changed keys: {}",
            latest.details
        );
    });
}

fn write_entries(db: &Db, n: usize, tag: &str) {
    for i in 0..n {
        db.write_blocking(|tx| {
            Audit::new(Event::ConfigChanged, T0)
                .details(serde_json::json!({ tag: i }))
                .append(tx)
                .map(|_| ())
        })
        .unwrap();
    }
}

fn head_seq(data: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    c.query_row("SELECT seq FROM audit_head", [], |r| r.get(0))
        .unwrap()
}

fn checkpoint_size(file: &std::path::Path) -> i64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(-1)
}

fn verify_checkpoint(
    data: &std::path::Path,
    file: &std::path::Path,
    extra: &[&str],
) -> (i32, String) {
    let mut args = vec![
        "audit",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--checkpoint",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    (o.status.code().unwrap(), text(&o))
}

/// AUD-04: the scheduler signs a checkpoint when five minutes have passed (manual clock) and
/// the log grew; a checkpoint kept elsewhere catches a cut-off tail that plain verify cannot,
/// a truncate-and-refill rewrite, a forged checkpoint and a foreign key.
#[actix_web::test]
async fn signed_checkpoints_catch_truncation_and_rewrites() {
    let mut s = TestServer::start_with(|c| c.jobs.sweep_seconds = 1).await;
    let data = s.data_dir();
    let file = data.join("audit-checkpoint.txt");
    // The start-up sweep signs the first one.
    assert!(crate::agent::eventually(10, || checkpoint_size(&file) == head_seq(&data)).await);
    let first = std::fs::read_to_string(&file).unwrap();
    assert!(
        first.starts_with("hourglass.test/hourglass-audit\n"),
        "{first}"
    );
    assert!(
        first.contains("\n\n\u{2014} hourglass.test/hourglass-audit "),
        "{first}"
    );

    let (mut portal, _) = crate::people::setup(&s).await;
    write_entries(&s.ctx().db, 20, "before");
    // Not yet due: the log grew, but five minutes have not passed.
    let now = s.clock.now();
    assert_eq!(
        hourglass::service::checkpoints::sweep(s.ctx(), now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    s.clock.advance_secs(300);
    let size = head_seq(&data);
    assert!(crate::agent::eventually(10, || checkpoint_size(&file) == size).await);
    let page = portal.get("/t/nikpot-it/audit").await.text().await.unwrap();
    assert!(
        page.contains(&format!("Last signed checkpoint: {size} entries")),
        "{page}"
    );
    assert!(page.contains("hourglass.test/hourglass-audit+"), "{page}");
    s.stop().await;
    let kept = data.parent().unwrap().join("kept.ckpt");
    std::fs::copy(&file, &kept).unwrap();

    let (code, out) = verify_checkpoint(&data, &kept, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "checkpoint OK: the log extends the signed checkpoint of {size} entries"
        )),
        "{out}"
    );

    // Cut off the last 10 entries and move the head back: the chain alone still verifies.
    tamper(
        &data,
        &format!(
            "DELETE FROM audit WHERE seq > {cut};
             UPDATE audit_head SET seq = {cut}, hash = (SELECT hash FROM audit WHERE seq = {cut});",
            cut = size - 10
        ),
    );
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{} entries verified", size - 10)),
        "{out}"
    );
    let (code, out) = verify_checkpoint(&data, &kept, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("log shorter than checkpoint"), "{out}");

    // Refill past the old size with other entries: long enough, but not the signed log.
    let (db, _) = Db::open(
        &data.join("hourglass.db"),
        std::time::Duration::from_secs(5),
        2,
    )
    .unwrap();
    write_entries(&db, 15, "forged");
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_checkpoint(&data, &kept, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("log rewritten: entry {size} differs")),
        "{out}"
    );
    drop(db);

    // The appliance itself will not bless the forked log, even with the checkpoint row in
    // the database gone: the file outside it still says what was signed.
    // Nor with its readable verifier key swapped for another: the key comes from the sealed row.
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    let vkey: String = c
        .query_row(
            "SELECT value FROM settings WHERE key = 'audit_verifier_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute_batch(
        "DELETE FROM settings WHERE key = 'audit_checkpoint';
         UPDATE settings SET value = 'hourglass.test/hourglass-audit+00000000+AQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUF'
         WHERE key = 'audit_verifier_key';",
    )
    .unwrap();
    drop(c);
    s.restart().await;
    s.clock.advance_secs(600);
    let now = s.clock.now();
    assert_eq!(
        hourglass::service::checkpoints::sweep(s.ctx(), now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        checkpoint_size(&file),
        size,
        "the last good checkpoint stays"
    );
    let restored: String = rusqlite::Connection::open(data.join("hourglass.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM settings WHERE key = 'audit_verifier_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        restored, vkey,
        "the readable copy is put right from the sealed key"
    );
    s.stop().await;

    // A checkpoint edited to claim less is refused by its signature.
    let forged = data.parent().unwrap().join("forged.ckpt");
    let body = std::fs::read_to_string(&kept).unwrap();
    std::fs::write(
        &forged,
        body.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size - 10), 1),
    )
    .unwrap();
    let (code, out) = verify_checkpoint(&data, &forged, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature does not verify"), "{out}");

    // Checked with a key that is not the appliance's.
    let other =
        "hourglass.test/hourglass-audit+00000000+AQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUF";
    let (code, out) = verify_checkpoint(&data, &kept, &["--key", other]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not signed by the key"), "{out}");

    // Not a checkpoint at all: a clear error, not a verdict.
    std::fs::write(&forged, "hello\n").unwrap();
    let (code, out) = verify_checkpoint(&data, &forged, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not a signed checkpoint"), "{out}");
}

/// AUD-05 through the real binary: a hostile ticket and justification stay inside their
/// cells, every record is one line, and the file is private.
#[test]
fn the_cli_export_is_injection_safe_in_csv_and_ndjson() {
    let (_d, data) = data_dir_with_entries(3);
    let (db, _) = Db::open(
        &data.join("hourglass.db"),
        std::time::Duration::from_secs(5),
        2,
    )
    .unwrap();
    db.write_blocking(|tx| {
        Audit::new(Event::RequestCreated, T0)
            .request("req-1", Some("W11\n<14>1 FAKE".into()))
            .details(
                serde_json::json!({"justification": "=HYPERLINK(\"http://evil.test\",\"click\")"}),
            )
            .append(tx)
            .map(|_| ())
    })
    .unwrap();
    drop(db);
    let d = data.to_str().unwrap();
    let total = head_seq(&data) as usize;

    let o = run(&["audit", "export", "--format", "csv", "--data-dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    let csv = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(
        csv.lines().count(),
        total + 1,
        "a header and one line per entry:\n{csv}"
    );
    assert!(csv.starts_with("seq,time,event,"), "{csv}");
    let hostile = csv.lines().last().unwrap();
    assert!(hostile.contains("W11\\n<14>1 FAKE"), "{hostile}");
    assert!(
        hostile.contains("\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"click\"\")\""),
        "{hostile}"
    );
    assert!(text(&o).contains(&format!("exported {total} audit entries")));

    let out = data.parent().unwrap().join("audit.ndjson");
    let o = run(&[
        "audit",
        "export",
        "--format",
        "ndjson",
        "--data-dir",
        d,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let nd = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), total);
    assert_eq!(
        lines.last().unwrap()["ticket_identifier"],
        "W11\n<14>1 FAKE"
    );
    assert_eq!(lines[0]["seq"], 1);

    // An existing file is never overwritten; bad options are named.
    let o = run(&[
        "audit",
        "export",
        "--format",
        "ndjson",
        "--data-dir",
        d,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("cannot create"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--data-dir",
        d,
        "--tenant",
        "nope",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--tenant: no tenant \"nope\""),
        "{}",
        text(&o)
    );
    let o = run(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--data-dir",
        d,
        "--from",
        "yesterday",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--from: must be a date"),
        "{}",
        text(&o)
    );
    let o = run(&["audit", "export", "--format", "xml", "--data-dir", d]);
    assert!(
        !o.status.success() && text(&o).contains("csv"),
        "{}",
        text(&o)
    );
}

/// The portal and API exports: a file of the tenant's entries, the export itself audited,
/// a bad format refused with the reason.
#[actix_web::test]
async fn portal_and_api_exports_are_files_and_are_audited() {
    let s = TestServer::start().await;
    let (mut portal, _) = crate::people::setup(&s).await;
    let r = portal
        .get("/t/nikpot-it/audit/export?format=csv&event=&actor=&from=&to=")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"audit-nikpot-it.csv\""
    );
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("seq,time,event,") && csv.lines().count() > 2,
        "{csv}"
    );
    // Names are joined in beside the ids: who acted, by name.
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let actor = header.iter().position(|h| *h == "actor_name").unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .any(|l| l.split(',').nth(actor) == Some("Nik Potter")),
        "{csv}"
    );
    let page = portal.get("/t/nikpot-it/audit").await.text().await.unwrap();
    assert!(
        page.contains("/t/nikpot-it/audit/export?format=ndjson&amp;"),
        "{page}"
    );
    assert!(
        page.contains("Nik Potter") && page.contains("User enrolled"),
        "the audit page names people and events in words: {page}"
    );

    let token = crate::requests::api_token(&s).await;
    let r = s
        .client()
        .get(s.url("/api/v1/tenants/nikpot-it/audit/export?format=ndjson&event=audit_exported"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let body = r.text().await.unwrap();
    let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "audit_exported");
    assert_eq!(first["details"]["format"], "csv");
    assert_eq!(first["actor_kind"], "user");
    let all = s
        .client()
        .get(s.url("/api/v1/tenants/nikpot-it/audit/export?format=ndjson"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tenants: std::collections::BTreeSet<String> = all
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tenant_id"].to_string())
        .collect();
    assert_eq!(
        tenants.len(),
        1,
        "only the tenant's own entries: {tenants:?}"
    );
    assert_eq!(
        tenants.into_iter().next().unwrap(),
        first["tenant_id"].to_string()
    );

    let (status, err) = crate::logins::api(
        &s,
        &token,
        "GET",
        "/api/v1/tenants/nikpot-it/audit/export?format=xml",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("must be csv or ndjson"), "{err}");
}

/// Syslog forwarding (DESIGN §6, AUD-05): entries appended while the SIEM is down arrive once
/// it is back, as octet-counted RFC 5424 frames; a hostile ticket stays inside one record;
/// the signed checkpoint is forwarded too.
#[actix_web::test]
async fn the_audit_log_reaches_a_syslog_receiver_that_was_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start_with(|c| {
        c.jobs.sweep_seconds = 1;
        c.syslog.address = format!("tcp://127.0.0.1:{port}");
    })
    .await;
    s.ctx()
        .db
        .write(|tx| {
            Audit::new(Event::RequestCreated, T0)
                .request("req-1", Some("W11\n<14>1 FAKE".into()))
                .append(tx)
                .map(|_| ())
        })
        .await
        .unwrap();
    // Down: nothing can be sent, and the sweep says so without losing the entries.
    assert!(hourglass::service::syslog::forward(s.ctx()).await.is_err());

    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut conn, &mut buf).unwrap();
            sink.lock().unwrap().extend_from_slice(&buf);
        }
    });
    let head = head_seq(&s.data_dir());
    let frames = || {
        let data = received.lock().unwrap().clone();
        let mut out = Vec::new();
        let mut rest = &data[..];
        while let Some(sp) = rest.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            out.push(String::from_utf8(rest[sp + 1..sp + 1 + len].to_vec()).unwrap());
            rest = &rest[sp + 1 + len..];
        }
        out
    };
    let seqs = |f: &[String]| -> std::collections::BTreeSet<i64> {
        f.iter()
            .filter_map(|m| m.split(" seq=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect()
    };
    assert!(
        crate::agent::eventually(15, || seqs(&frames()) == (1..=head).collect()).await,
        "every entry, none lost: {:?}",
        seqs(&frames())
    );
    // The start-up checkpoint went out while the receiver was down (best effort: it is in
    // the file); the next one, five minutes on, reaches it.
    s.clock.advance_secs(300);
    let checkpoint = |f: &[String]| {
        f.iter()
            .any(|m| m.contains(" hourglass - checkpoint - hourglass.test/hourglass-audit\\n"))
    };
    assert!(crate::agent::eventually(15, || checkpoint(&frames())).await);
    let all = frames();
    let hostile = all.iter().find(|m| m.contains("request_created")).unwrap();
    assert!(!hostile.contains('\n'), "{hostile}");
    assert!(hostile.contains(r#"ticket="W11\n<14>1 FAKE""#), "{hostile}");
    assert!(hostile.starts_with("<109>1 "), "{hostile}");
}
