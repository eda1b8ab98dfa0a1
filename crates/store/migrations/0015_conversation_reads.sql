-- How far each user has read each conversation, for unread counts in the inbox.
CREATE TABLE conversation_reads (
    user_id TEXT NOT NULL REFERENCES users(id),
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    -- Messages sent up to this time (ms) count as read.
    last_read_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
