-- Buffered deliveries (whatsapp.message.received per conversation): members wait as
-- 'buffered' under a batch key until the window ends or the buffer is full, then become
-- 'batched' under one delivery that carries them all.
ALTER TABLE webhook_deliveries ADD COLUMN batch_key TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN batch_id TEXT;
CREATE INDEX webhook_deliveries_buffered ON webhook_deliveries(webhook_id, batch_key, status);
