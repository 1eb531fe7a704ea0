//! The data directory: refusals that leave files untouched, key-file permissions.

use std::os::unix::fs::PermissionsExt;

use crate::support::*;

fn fingerprint_cmd(data: &std::path::Path) -> std::process::Output {
    run(&["cert", "fingerprint", "--data-dir", data.to_str().unwrap()])
}

#[test]
fn a_database_newer_than_the_binary_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fingerprint_cmd(&data).status.success());
    let db = data.join("hourglass.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = sha256_file(&db);
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("schema version 99, newer than this binary supports"),
        "{msg}"
    );
    assert_eq!(msg.trim().lines().count(), 1, "one clear line: {msg}");
    assert_eq!(sha256_file(&db), before);
}

#[test]
fn a_foreign_sqlite_file_or_garbage_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("hourglass.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);",
        )
        .unwrap();
    }
    let before = sha256_file(&db);
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not an Hourglass database"),
        "{}",
        text(&out)
    );
    assert_eq!(sha256_file(&db), before);
    assert!(
        !data.join("master.key").exists(),
        "no key created for a foreign database"
    );

    std::fs::write(&db, b"this is definitely not sqlite, just some text that is long enough to look like a header....").unwrap();
    let before = sha256_file(&db);
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not an Hourglass database"),
        "{}",
        text(&out)
    );
    assert_eq!(sha256_file(&db), before);
}

#[test]
fn the_master_key_must_not_be_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fingerprint_cmd(&data).status.success());
    let key = data.join("master.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("master.key has mode 0644") && msg.contains("chmod 600"),
        "{msg}"
    );
    let serve = run(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!serve.status.success());
    assert!(text(&serve).contains("chmod 600"), "{}", text(&serve));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(
        fingerprint_cmd(&data).status.success(),
        "0640 (service group) is allowed"
    );
}

#[test]
fn a_missing_key_next_to_an_existing_database_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fingerprint_cmd(&data).status.success());
    std::fs::remove_file(data.join("master.key")).unwrap();
    let before = sha256_file(&data.join("hourglass.db"));
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("master.key is missing but the database already exists"),
        "{}",
        text(&out)
    );
    assert!(!data.join("master.key").exists(), "never silently replaced");
    assert_eq!(sha256_file(&data.join("hourglass.db")), before);
}

#[test]
fn a_wrong_key_cannot_open_the_sealed_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fingerprint_cmd(&data).status.success());
    std::fs::write(data.join("master.key"), [7u8; 32]).unwrap();
    let out = fingerprint_cmd(&data);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("TLS key cannot be decrypted with this master.key"),
        "{}",
        text(&out)
    );
    let c = rusqlite::Connection::open(data.join("hourglass.db")).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM audit WHERE event = 'crypt_decrypt_fail'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1, "the failure is audited");
}

#[test]
fn secrets_never_appear_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(fingerprint_cmd(&data).status.success());
    // The rows may still sit in the write-ahead log: both files count.
    let mut raw = std::fs::read(data.join("hourglass.db")).unwrap();
    raw.extend(std::fs::read(data.join("hourglass.db-wal")).unwrap_or_default());
    let hay = String::from_utf8_lossy(&raw);
    assert!(
        hay.contains("BEGIN CERTIFICATE"),
        "the certificate is stored in the clear"
    );
    assert!(
        !hay.contains("PRIVATE KEY"),
        "the TLS key is only stored sealed"
    );
}
