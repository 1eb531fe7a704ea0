-- Migration 6: technician JIT logins, escrowed workstation passwords, offline codes (DESIGN §5).

-- A technician's login session on a workstation.
CREATE TABLE logins (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    account    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('waiting', 'active', 'ended', 'expired', 'revoked', 'failed')),
    minutes    INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 1440),
    ticket     TEXT,
    revealed   INTEGER NOT NULL DEFAULT 0 CHECK (revealed IN (0, 1)),
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER,
    ended_by   TEXT
) STRICT;
-- One open session per account and workstation: a second would change the first one's password.
CREATE UNIQUE INDEX logins_one_open ON logins (device_id, account) WHERE state IN ('waiting', 'active');
CREATE INDEX logins_tenant ON logins (tenant_id, created_at);
CREATE INDEX logins_due ON logins (state, expires_at);

-- Escrowed workstation passwords (CRED-01/02): sealed, `pending` until the agent acknowledges
-- the command that sets it, then `current`; three `old` versions keep their ciphertext, older
-- ones keep only the row (who, when), never the password.
CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    account         TEXT NOT NULL,
    login_id        TEXT REFERENCES logins (id),
    command_id      TEXT,
    reason          TEXT NOT NULL CHECK (reason IN ('login', 'rotation')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'current', 'old', 'failed')),
    password_sealed BLOB,
    created_at      INTEGER NOT NULL,
    activated_at    INTEGER
) STRICT;
CREATE INDEX credentials_device ON credentials (device_id, account, created_at);
CREATE INDEX credentials_command ON credentials (command_id);

-- Offline-code secrets (MFA-06/07): one per workstation (named mode) or per tenant (shared).
CREATE TABLE offline_secrets (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    device_id     TEXT REFERENCES devices (id),
    secret_sealed BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('current', 'old')),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX offline_secrets_current ON offline_secrets (tenant_id, coalesce(device_id, ''))
    WHERE state = 'current';

-- A tenant's shared account (`msp-` + four digits), unique on the appliance.
CREATE TABLE shared_accounts (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id),
    account    TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
