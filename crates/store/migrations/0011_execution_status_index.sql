-- Executions by status (the /metrics gauge and status-filtered lists) read this index
-- instead of the table.
CREATE INDEX workflow_executions_status ON workflow_executions(status);
