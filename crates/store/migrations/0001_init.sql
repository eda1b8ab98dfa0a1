-- Chasqui schema, version 1. The same SQL runs on SQLite and PostgreSQL:
-- ids are TEXT (UUIDv7), times BIGINT epoch milliseconds, JSON TEXT, flags BIGINT 0/1.

CREATE TABLE instance (
    id BIGINT PRIMARY KEY,
    key_check TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_project ON api_keys(project_id);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    external_customer_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX customers_external ON customers(project_id, external_customer_id);

CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    customer_id TEXT REFERENCES customers(id),
    phone_number_id TEXT NOT NULL UNIQUE,
    business_account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    display_phone_number TEXT,
    access_token_enc TEXT NOT NULL,
    app_secret_enc TEXT NOT NULL,
    verify_token_digest TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX phone_numbers_project ON phone_numbers(project_id);
CREATE INDEX phone_numbers_waba ON phone_numbers(business_account_id);
CREATE INDEX phone_numbers_verify ON phone_numbers(verify_token_digest);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    contact_key TEXT NOT NULL,
    wa_id TEXT,
    user_id TEXT,
    profile_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, contact_key)
);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    phone_number_id TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts(id),
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    ended_at BIGINT,
    messages_count BIGINT NOT NULL DEFAULT 0,
    last_message_id TEXT,
    last_message_type TEXT,
    last_message_at BIGINT,
    last_message_text TEXT,
    last_inbound_at BIGINT,
    last_outbound_at BIGINT
);
CREATE UNIQUE INDEX conversations_one_active ON conversations(phone_number_id, contact_id) WHERE status = 'active';
CREATE INDEX conversations_project_activity ON conversations(project_id, last_active_at, id);
CREATE INDEX conversations_active_idle ON conversations(status, last_active_at);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    phone_number_id TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id),
    contact_id TEXT REFERENCES contacts(id),
    wamid TEXT NOT NULL,
    direction TEXT NOT NULL,
    message_type TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    body TEXT NOT NULL,
    content TEXT NOT NULL,
    has_media BIGINT NOT NULL,
    media_id TEXT,
    sent_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (phone_number_id, wamid)
);
CREATE INDEX messages_conversation ON messages(conversation_id, sent_at, id);
CREATE INDEX messages_number ON messages(phone_number_id, sent_at, id);

CREATE TABLE message_statuses (
    id TEXT PRIMARY KEY,
    phone_number_id TEXT NOT NULL,
    wamid TEXT NOT NULL,
    status TEXT NOT NULL,
    status_at BIGINT NOT NULL,
    raw TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (phone_number_id, wamid, status)
);

CREATE TABLE media (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    phone_number_id TEXT NOT NULL,
    meta_media_id TEXT NOT NULL,
    mime_type TEXT,
    sha256 TEXT,
    file_size BIGINT,
    filename TEXT,
    storage_path TEXT,
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (phone_number_id, meta_media_id)
);

CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    business_account_id TEXT NOT NULL,
    meta_template_id TEXT NOT NULL,
    name TEXT,
    language TEXT,
    category TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (business_account_id, meta_template_id)
);

CREATE TABLE account_events (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    business_account_id TEXT NOT NULL,
    phone_number_id TEXT,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    -- The delivery and change it came from: applying a delivery twice records it once.
    source_event_id TEXT NOT NULL,
    change_index BIGINT NOT NULL,
    UNIQUE (source_event_id, change_index, project_id)
);
CREATE INDEX account_events_project ON account_events(project_id, received_at);

-- Raw Meta deliveries; a 'pending' row is its own processing job (invariant 7). Workers
-- claim rows with a lease (locked_until). On SQLite this table lives in a separate file
-- (see store::inbox) so storing deliveries never waits for processing's write lock.
CREATE TABLE inbound_events (
    id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    processed_at BIGINT,
    errors TEXT
);
CREATE INDEX inbound_events_pending ON inbound_events(status, received_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(status, run_at);
