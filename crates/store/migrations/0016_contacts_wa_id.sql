-- Finding a customer's live conversation by number (the 24-hour window check before every
-- send) starts from the contact; without this index it walked every active conversation.
CREATE INDEX contacts_wa_id ON contacts(project_id, wa_id);
