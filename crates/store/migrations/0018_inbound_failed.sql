-- Deliveries parked after failing to store (invariant 9): counted by /metrics and listed
-- oldest first, without reading the processed history.
CREATE INDEX inbound_events_failed ON inbound_events(received_at, id) WHERE status = 'failed';
