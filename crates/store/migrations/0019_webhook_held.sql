-- Deliveries of a paused or disabled webhook wait as 'held', outside the claim queue
-- (webhook_deliveries_queue covers only 'pending'): otherwise every claim walked past a
-- paused endpoint's whole backlog, inside the writer's transaction, before reaching the
-- deliveries it could send. Re-enabling the webhook turns them back into 'pending' (or
-- 'buffered', for members of a conversation buffer).
CREATE INDEX webhook_deliveries_held ON webhook_deliveries(webhook_id) WHERE status = 'held';
UPDATE webhook_deliveries SET status = 'held', locked_until = NULL
 WHERE status IN ('pending', 'buffered')
   AND webhook_id IN (SELECT id FROM webhooks WHERE active = 0 OR paused_at IS NOT NULL);
