-- Post-wide messages: a broadcast and one outbox row per conversation, written in one transaction.
create table broadcasts (
    broadcast_id text primary key,
    -- From the confirm form, so a double submit creates one broadcast.
    idempotency_key text not null unique,
    post_token text not null,
    -- The seller whose token sends it.
    user_id text not null,
    -- The send-message body, as JSON.
    body text not null,
    -- 'running', 'paused' (the seller must reconnect), 'cancelled' or 'done'
    status text not null,
    paused_reason text,
    total bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index broadcasts_post on broadcasts (post_token, created_at);

create table outbox (
    outbox_id text primary key,
    broadcast_id text not null references broadcasts (broadcast_id),
    conversation_id text not null,
    -- Sent as Idempotency-Key on every attempt of this row.
    idempotency_key text not null unique,
    -- 'pending', 'sent', 'failed' or 'cancelled'
    status text not null,
    failure text,
    attempts bigint not null,
    next_attempt_at bigint not null,
    -- A worker's lease on the row; an expired lease may be taken over.
    locked_until bigint,
    locked_by text,
    created_at bigint not null,
    updated_at bigint not null,
    unique (broadcast_id, conversation_id)
);

create index outbox_due on outbox (status, next_attempt_at);
