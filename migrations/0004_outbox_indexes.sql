-- Claims read due rows in order without sorting, and completion checks and progress counts look
-- up one broadcast's rows without scanning the whole outbox.
create index outbox_claim_order on outbox (status, next_attempt_at, outbox_id);
create index outbox_broadcast_status on outbox (broadcast_id, status);
