-- Indexes that hand every statement its rows in the order it wants them, so a claim or a
-- page reads what it returns and no more (the query-plan audit, crates/store/src/plans.rs,
-- checks every statement the end-to-end tests run).

-- Queues: a partial index holds only the waiting rows, in claim order; rows that are done
-- (the vast majority) leave it and cost nothing to later claims.
DROP INDEX inbound_events_pending;
CREATE INDEX inbound_events_queue ON inbound_events(received_at, id) WHERE status = 'pending';
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs(status, run_at, id);
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries(next_attempt_at, id) WHERE status = 'pending';
DROP INDEX webhook_deliveries_buffered;
CREATE INDEX webhook_deliveries_buffers ON webhook_deliveries(webhook_id, batch_key, next_attempt_at) WHERE status = 'buffered';
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries(project_id, created_at) WHERE status = 'failed';
DROP INDEX workflow_inbox_unrouted;
CREATE INDEX workflow_inbox_unrouted ON workflow_inbox(execution_id, ord, id);
DROP INDEX notifications_unsent;
CREATE INDEX notifications_unsent ON notifications(created_at, id) WHERE emailed_at IS NULL;

-- Sweeps over live conversations walk them by last activity.
DROP INDEX conversations_active_idle;
CREATE INDEX conversations_active_idle ON conversations(status, last_active_at, id);
-- A contact's conversations (and the foreign-key check when a contact goes).
CREATE INDEX conversations_contact ON conversations(contact_id, phone_number_id);
CREATE INDEX contacts_recent ON contacts(project_id, updated_at, id);
-- A project's conversations of one status (the inbox's active list), latest first.
CREATE INDEX conversations_project_status ON conversations(project_id, status, last_active_at, id);

-- Pages newest first: (scope, created_at, id) matches ORDER BY created_at DESC, id DESC.
DROP INDEX webhook_deliveries_project;
CREATE INDEX webhook_deliveries_project ON webhook_deliveries(project_id, created_at, id);
DROP INDEX phone_numbers_project;
CREATE INDEX phone_numbers_project ON phone_numbers(project_id, created_at, id);
CREATE INDEX phone_numbers_customer ON phone_numbers(customer_id);
CREATE INDEX customers_project ON customers(project_id, created_at, id);
DROP INDEX workflows_project;
CREATE INDEX workflows_project ON workflows(project_id, created_at, id);
DROP INDEX account_events_project;
CREATE INDEX account_events_project ON account_events(project_id, received_at, id);
DROP INDEX notifications_project;
CREATE INDEX notifications_project ON notifications(project_id, created_at, id);
DROP INDEX conversation_assignments_conversation;
CREATE INDEX conversation_assignments_conversation ON conversation_assignments(conversation_id, created_at, id);
CREATE INDEX memberships_project ON memberships(project_id, created_at, id);

-- Templates by Meta's id, and a project's templates by name.
CREATE INDEX templates_meta_id ON templates(meta_template_id);
CREATE INDEX templates_project ON templates(project_id, name, language, meta_template_id);

-- Webhooks remember up to which moment of last activity their inactivity sweep has looked.
ALTER TABLE webhooks ADD COLUMN inactive_swept_until BIGINT;
