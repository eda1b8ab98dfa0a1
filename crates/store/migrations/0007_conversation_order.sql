-- Messages of the same second (Meta's timestamps have second precision) are ordered by their
-- place in Meta's stream (inbound) or their send time (outbound), so the conversation's
-- last message is right even when workers store a burst in parallel.
ALTER TABLE conversations ADD COLUMN last_message_order TEXT;
