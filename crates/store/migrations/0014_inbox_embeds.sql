-- Inbox embeds: a token (stored hashed) that opens the inbox inside another site, confined
-- to a project, one phone number or one customer's numbers.
CREATE TABLE inbox_embeds (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    -- project | phone_number | customer
    scope_type TEXT NOT NULL,
    scope_id TEXT,
    -- JSON array of origins (https://a.example, https://*.example.com); empty = any
    allowed_origins TEXT NOT NULL,
    -- system | light | dark
    default_mode TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX inbox_embeds_project ON inbox_embeds(project_id, created_at);
