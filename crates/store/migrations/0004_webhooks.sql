-- Outbound webhooks: the user's endpoints, one durable delivery per (event, webhook)
-- created in the transaction that produced the event, and every attempt's outcome.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    -- NULL: a project webhook (all numbers, project events).
    phone_number_id TEXT,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_enc TEXT NOT NULL,
    headers TEXT NOT NULL,
    active BIGINT NOT NULL,
    buffer_enabled BIGINT NOT NULL,
    buffer_window_seconds BIGINT NOT NULL,
    max_buffer_size BIGINT NOT NULL,
    buffer_events TEXT NOT NULL,
    inactivity_minutes BIGINT NOT NULL,
    payload_version TEXT NOT NULL,
    paused_at BIGINT,
    pause_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_scope ON webhooks(project_id, phone_number_id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    phone_number_id TEXT,
    -- What the event is about (ids), rendered into `payload` at the first attempt; retries
    -- send the same bytes.
    subject TEXT NOT NULL,
    payload TEXT,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    delivered_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_project ON webhook_deliveries(project_id, created_at);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    response_body TEXT,
    error TEXT,
    attempted_at BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);
