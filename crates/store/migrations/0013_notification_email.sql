-- Emailing notices to the project's members: a claim (lease) so one node sends each, the
-- attempts and last error, and a key that coalesces repeats (one email per failing
-- workflow per window).
ALTER TABLE notifications ADD COLUMN email_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN email_error TEXT;
ALTER TABLE notifications ADD COLUMN email_lease_until BIGINT;
ALTER TABLE notifications ADD COLUMN dedupe_key TEXT;
CREATE INDEX notifications_unsent ON notifications(created_at) WHERE emailed_at IS NULL;
CREATE INDEX notifications_dedupe ON notifications(project_id, kind, dedupe_key, created_at);
