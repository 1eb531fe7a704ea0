-- Migration 7: application elevation policies (DESIGN §4).

-- A policy: its targets, span, access and rules live in `body` (JSON of model::policies),
-- the matching engine's own format, so the bundle an agent caches is exactly what is stored.
CREATE TABLE policies (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX policies_tenant ON policies (tenant_id, name);

-- The version of each tenant's policy bundle, raised by every change.
CREATE TABLE policy_versions (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    version   INTEGER NOT NULL
) STRICT;
