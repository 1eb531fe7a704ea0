-- Migration 10: API tokens say whether they may do sensitive actions (SESS-05) and when they
-- stop working. Existing tokens keep working, without the sensitive scope.
ALTER TABLE api_tokens ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0 CHECK (sensitive IN (0, 1));
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
