-- One delivery path: a single-conversation send is an outbox row too, so it survives the page
-- request that made it (a phone that drops the request, a process that dies). A row belongs to
-- exactly one broadcast or one message. SQLite cannot relax a NOT NULL column in place, so the
-- table is rebuilt; the statements are the same on both engines.
create table outbox_new (
    outbox_id text primary key,
    broadcast_id text references broadcasts (broadcast_id),
    message_id text references messages (message_id),
    conversation_id text not null,
    -- Sent as Idempotency-Key on every attempt of this row.
    idempotency_key text not null unique,
    -- 0: a person is waiting for it (single sends); 1: bulk (broadcasts). Claimed in this order.
    -- The default lets a replica of the previous release, still running during a rolling
    -- upgrade, create broadcasts.
    priority bigint not null default 1 check (priority in (0, 1)),
    status text not null check (status in ('pending', 'sent', 'failed', 'cancelled')),
    failure text,
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

insert into outbox_new (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
    status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
select outbox_id, broadcast_id, null, conversation_id, idempotency_key, 1,
    status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at
from outbox;

-- Messages left "sending" by the old in-request path (the request was dropped mid-send) are
-- delivered after the upgrade, under their original idempotency keys.
insert into outbox_new (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
    status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at)
select 'm-' || message_id, null, message_id, conversation_id, idempotency_key, 0,
    'pending', null, 0, updated_at, null, null, created_at, updated_at
from messages where status = 'sending';

drop table outbox;
alter table outbox_new rename to outbox;

-- Claims read due rows in priority order without sorting; progress counts look up one
-- broadcast's rows without scanning the whole outbox.
create index outbox_claim_order on outbox (status, priority, next_attempt_at, outbox_id);
create index outbox_broadcast_status on outbox (broadcast_id, status);
