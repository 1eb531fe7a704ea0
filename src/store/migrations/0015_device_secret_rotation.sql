-- Migration 15: a device secret being replaced (AGT-02). The agent asks for a new secret; its
-- hash waits here until the agent first calls with it, which makes it the only valid one.
ALTER TABLE devices ADD COLUMN next_secret_hash BLOB;
