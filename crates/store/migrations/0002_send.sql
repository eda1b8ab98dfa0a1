-- Sending through the proxy: an outbound message is in flight while its Graph call runs
-- (at most one per conversation), keeps Meta's error when it fails, and sends can be
-- made idempotent with a client key.
ALTER TABLE messages ADD COLUMN in_flight BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN error TEXT;
CREATE UNIQUE INDEX messages_one_in_flight ON messages(conversation_id) WHERE in_flight = 1;

CREATE TABLE idempotency_keys (
    project_id TEXT NOT NULL REFERENCES projects(id),
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, idempotency_key)
);
