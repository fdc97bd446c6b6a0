-- Who sent a single send, on its outbox row: the express lane takes single sends in turns across
-- the people who sent them, and reads the queue from one index instead of joining messages.
-- Broadcast rows leave it empty (their sender is the broadcast's). A release before this one
-- writes no sender; the lane counts such rows as one more person.
alter table outbox add column user_id text;
update outbox set user_id = (select m.user_id from messages m where m.message_id = outbox.message_id)
    where message_id is not null;

-- The express lane's queue: pending single sends, each chat's in the order they were queued.
create index outbox_single_sends on outbox (conversation_id, outbox_id)
    where status = 'pending' and priority = 0;

-- Erasure finds a person's single sends by the sender.
create index outbox_user on outbox (user_id) where user_id is not null;
