-- Workflow executions: the interpreter's state (call stack and variables) as JSON, the effect
-- in progress (recorded before it is performed), and `due_at`, the moment the engine must look
-- at the execution again (a timeout, a queued reply, a step to run). Waits are rows, not timers.
CREATE TABLE workflow_executions (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    workflow_version BIGINT NOT NULL,
    tracking_id TEXT NOT NULL UNIQUE,
    trigger_type TEXT NOT NULL,
    status TEXT NOT NULL,
    waiting_reason TEXT,
    phone_number_id TEXT,
    contact_id TEXT,
    conversation_id TEXT,
    wa_id TEXT,
    current_node TEXT,
    state TEXT NOT NULL,
    effect TEXT,
    wait_until BIGINT,
    due_at BIGINT,
    lease_until BIGINT,
    revision BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    error_details TEXT,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    last_event_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflow_executions_due ON workflow_executions(due_at);
CREATE INDEX workflow_executions_workflow ON workflow_executions(workflow_id, started_at, id);
CREATE INDEX workflow_executions_conversation ON workflow_executions(conversation_id, started_at, id);
-- One execution at a time drives a customer's thread on a number.
CREATE UNIQUE INDEX workflow_executions_one_driver ON workflow_executions(phone_number_id, contact_id)
    WHERE status IN ('running', 'waiting', 'handoff') AND contact_id IS NOT NULL;

-- The step log of every execution, in order.
CREATE TABLE workflow_events (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES workflow_executions(id),
    seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    node_id TEXT,
    direction TEXT,
    edge_label TEXT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (execution_id, seq)
);

-- Customer messages (and API resumes) waiting to reach an execution: written in the
-- transaction that stores the message, routed to the thread's execution (or starting one),
-- consumed in order by its waits.
CREATE TABLE workflow_inbox (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    conversation_id TEXT,
    message_id TEXT UNIQUE,
    kind TEXT NOT NULL,
    input TEXT NOT NULL,
    ord TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    execution_id TEXT,
    lease_until BIGINT
);
CREATE INDEX workflow_inbox_unrouted ON workflow_inbox(execution_id, ord);
