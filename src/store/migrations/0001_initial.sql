-- Migration 1: the first released schema, frozen. Never edit a released migration;
-- add the next numbered file and update schema.sql to match.
-- Conventions: ids are UUIDv7 TEXT, timestamps INTEGER UTC milliseconds, enums TEXT + CHECK.

PRAGMA application_id = 1212632147; -- 'HGLS': marks the file as an Hourglass database
PRAGMA user_version = 1;

-- Appliance-wide key/value settings (last applied configuration, first-start markers).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- TLS certificates; exactly one is active. The private key is sealed with the master key.
CREATE TABLE tls_certificates (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('self_signed', 'imported')),
    cert_pem    TEXT NOT NULL,
    key_sealed  BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX tls_certificates_one_active ON tls_certificates (active) WHERE active = 1;

-- Append-only, hash-chained audit log (DESIGN §6). Personal data lives in other tables;
-- entries reference ids, so erasing a person leaves the chain valid.
CREATE TABLE audit (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    at                 INTEGER NOT NULL,
    event              TEXT NOT NULL,
    outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    tenant_id          TEXT,
    actor_kind         TEXT NOT NULL CHECK (actor_kind IN ('system', 'user', 'api_token', 'device', 'anonymous')),
    actor_id           TEXT,
    target_kind        TEXT,
    target_id          TEXT,
    device_id          TEXT,
    request_identifier TEXT,
    ticket_identifier  TEXT,
    ip                 TEXT,
    http_request_id    TEXT,
    details            TEXT NOT NULL,
    prev_hash          BLOB NOT NULL,
    hash               BLOB NOT NULL
) STRICT;
CREATE INDEX audit_tenant_at ON audit (tenant_id, at);
CREATE INDEX audit_event_at ON audit (event, at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- The chain head, written with every append, so a deleted tail is noticed by `audit verify`.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
) STRICT;

-- One row rewritten by /healthz to prove the database accepts writes.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
