-- Migration 14: the SHA-256 of the agent binary each workstation last reported, so a replaced
-- binary raises a tamper alert even when it claims the same version ('' until reported).
ALTER TABLE devices ADD COLUMN agent_hash TEXT NOT NULL DEFAULT '';
