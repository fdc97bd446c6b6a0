-- `outbox_due` (status, next_attempt_at) is a prefix of `outbox_claim_order`, which serves the
-- same lookups; each index is one more write for every outbox insert and status change.
drop index outbox_due;
-- Workers mark running broadcasts done when the queue runs dry; find those without a scan of
-- the whole history.
create index broadcasts_status on broadcasts (status);
