-- Workflows and every version of their definition: an execution keeps the version it
-- started with while the workflow is edited (lock_version is the current version).
CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    lock_version BIGINT NOT NULL,
    message_debounce_seconds BIGINT NOT NULL,
    inbound_message_read_mode TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflows_project ON workflows(project_id, created_at);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
