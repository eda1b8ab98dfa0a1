-- People of a project: dashboard users, their role in each project, their login sessions,
-- and who is assigned to which conversation.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Lowercased; one account per address across the instance.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    -- owner | admin | member
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

-- A session is found by the SHA-256 of its cookie value; the cookie itself is never stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE conversation_assignments (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    created_by_user_id TEXT REFERENCES users(id),
    notes TEXT,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX conversation_assignments_conversation
    ON conversation_assignments(conversation_id, created_at);
-- At most one active assignment per conversation; the list filters use it too.
CREATE UNIQUE INDEX conversation_assignments_one_active
    ON conversation_assignments(conversation_id) WHERE active = 1;
CREATE INDEX conversation_assignments_user
    ON conversation_assignments(project_id, user_id) WHERE active = 1;
