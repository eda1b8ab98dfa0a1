-- Notices for the people of a project (a webhook paused, later executions failing): kept
-- and listed by the API, and emailed once users and SMTP exist.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    emailed_at BIGINT
);
CREATE INDEX notifications_project ON notifications(project_id, created_at);
