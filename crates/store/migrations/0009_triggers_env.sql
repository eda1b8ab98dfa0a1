-- What starts a workflow, and the project's environment variables (`${ENV:KEY}`), whose
-- values are encrypted with the instance key.
CREATE TABLE workflow_triggers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    trigger_type TEXT NOT NULL,
    phone_number_id TEXT,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflow_triggers_workflow ON workflow_triggers(workflow_id);
-- At most one active inbound_message trigger per number, one api_call trigger per workflow.
CREATE UNIQUE INDEX workflow_triggers_one_inbound ON workflow_triggers(phone_number_id)
    WHERE trigger_type = 'inbound_message' AND active = 1;
CREATE UNIQUE INDEX workflow_triggers_one_api ON workflow_triggers(workflow_id)
    WHERE trigger_type = 'api_call';

CREATE TABLE env_vars (
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    value_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);
