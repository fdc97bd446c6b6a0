-- A seller's message to every conversation of their post. It is written in one transaction with
-- its outbox rows, one per conversation.
create table broadcasts (
    broadcast_id text not null primary key,
    -- From the confirm form, so a double submit creates one broadcast. The broadcast's buttons
    -- carry it, so a tap finds its way back.
    idempotency_key text not null unique,
    post_token text not null,
    -- The seller whose token sends it.
    user_id text not null,
    -- The send-message body, as JSON; `{}` once the purge has cleared it.
    body text not null,
    -- 'paused': the seller must reconnect.
    status text not null check (status in ('running', 'paused', 'cancelled', 'done')),
    paused_reason text,
    total bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- A seller's broadcasts of a post, newest first (the post page; pausing and resuming them when
-- their grant fails or comes back); erasure by the seller's id.
create index broadcasts_user_post on broadcasts (user_id, post_token, created_at);
-- Workers mark running broadcasts done when the queue runs dry, without reading the history.
create index broadcasts_status on broadcasts (status);

-- The delivery queue: one row per message to deliver (a single send, or one conversation of a
-- broadcast), claimed by workers under a lease.
create table outbox (
    outbox_id text not null primary key,
    -- What the row delivers: exactly one of the two. Deleting it (erasure, the purge) deletes
    -- its rows, so nothing is left to send for data that is gone.
    broadcast_id text references broadcasts (broadcast_id) on delete cascade,
    message_id text references messages (message_id) on delete cascade,
    conversation_id text not null,
    -- Sent as Idempotency-Key on every attempt of this row, so a retry never delivers twice.
    idempotency_key text not null unique,
    -- 0: a person is waiting for it (single sends); 1: bulk (broadcasts). Claimed in this order.
    priority bigint not null check (priority in (0, 1)),
    status text not null check (status in ('pending', 'sent', 'failed', 'cancelled')),
    -- Why the last attempt failed (`services::delivery::Failure`).
    failure text check (failure in
        ('recipient_restricted', 'reconsent', 'rate_limited', 'unavailable', 'rejected')),
    attempts bigint not null,
    next_attempt_at bigint not null,
    -- A worker's lease on the row; an expired lease may be taken over.
    locked_until bigint,
    locked_by text,
    created_at bigint not null,
    updated_at bigint not null,
    unique (broadcast_id, conversation_id),
    unique (message_id),
    check ((broadcast_id is null and message_id is not null)
        or (broadcast_id is not null and message_id is null))
);

-- Claims read due rows in priority order without sorting.
create index outbox_claim_order on outbox (status, priority, next_attempt_at, outbox_id);
-- A broadcast's progress and failure counts, without reading the whole outbox.
create index outbox_broadcast_status on outbox (broadcast_id, status);
