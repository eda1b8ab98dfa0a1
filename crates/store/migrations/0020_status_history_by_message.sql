-- The status history was unique on (phone number, wamid, status). wamids are random, so
-- every status Meta reported dirtied a random leaf page of that index: 7.5 of the ~35
-- pages the SQLite writer wrote per conversation of `bench flows`. It is unique on
-- (message, status) now: message ids are time-ordered, so a status lands beside those of
-- the messages sent just before it. A status is stored once its message is (a stub is
-- made for a wamid not sent from here), so every row finds its message; message_id is
-- NULL only for rows whose message was deleted before this migration.
CREATE TABLE message_status_history (
    id TEXT PRIMARY KEY,
    message_id TEXT,
    phone_number_id TEXT NOT NULL,
    wamid TEXT NOT NULL,
    status TEXT NOT NULL,
    status_at BIGINT NOT NULL,
    raw TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (message_id, status)
);
INSERT INTO message_status_history (id, message_id, phone_number_id, wamid, status, status_at, raw, received_at)
SELECT s.id, m.id, s.phone_number_id, s.wamid, s.status, s.status_at, s.raw, s.received_at
  FROM message_statuses s
  LEFT JOIN messages m ON m.phone_number_id = s.phone_number_id AND m.wamid = s.wamid;
DROP TABLE message_statuses;
ALTER TABLE message_status_history RENAME TO message_statuses;
