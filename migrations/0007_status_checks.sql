-- Status columns accept only the values the code knows (domain::status, grants::Subject,
-- UserSide, PayloadRevision), so a typo in SQL or a hand edit cannot leave a row no worker or
-- page understands. SQLite cannot add a CHECK to an existing table, so `grants`, `messages`,
-- `broadcasts` and `session_inits` are rebuilt, with `outbox` and `entry_links`, which
-- reference them. The statements are the same on both
-- engines: the new `outbox` references the new tables by their new names, which both engines
-- carry through the renames (PostgreSQL by object, SQLite by rewriting the reference), and the
-- old tables are dropped child first, so no foreign key ever points at a dropped table. The
-- values are those every earlier release wrote, so a replica of the previous release keeps
-- working during a rolling upgrade.

create table grants_new (
    grant_id text primary key,
    subject_kind text not null check (subject_kind in ('conversation', 'post')),
    subject_id text not null,
    user_id text not null,
    scope text not null,
    access_token text not null,
    refresh_token text,
    access_expires_at bigint not null,
    key_version bigint not null,
    -- Set while one process refreshes the tokens, so others wait instead of refreshing too.
    refresh_lease_until bigint,
    created_at bigint not null,
    updated_at bigint not null,
    unique (subject_kind, subject_id, user_id)
);

insert into grants_new (grant_id, subject_kind, subject_id, user_id, scope, access_token,
    refresh_token, access_expires_at, key_version, refresh_lease_until, created_at, updated_at)
select grant_id, subject_kind, subject_id, user_id, scope, access_token,
    refresh_token, access_expires_at, key_version, refresh_lease_until, created_at, updated_at
from grants;

create table messages_new (
    message_id text primary key,
    idempotency_key text not null unique,
    conversation_id text not null,
    user_id text not null,
    -- The JSON body sent to Divar.
    body text not null,
    status text not null check (status in ('sending', 'sent', 'failed')),
    -- Why it failed: 'recipient_restricted', 'reconsent', 'rate_limited', 'unavailable', 'rejected'.
    failure text,
    attempts bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

insert into messages_new (message_id, idempotency_key, conversation_id, user_id, body, status,
    failure, attempts, created_at, updated_at)
select message_id, idempotency_key, conversation_id, user_id, body, status,
    failure, attempts, created_at, updated_at
from messages;

create table broadcasts_new (
    broadcast_id text primary key,
    -- From the confirm form, so a double submit creates one broadcast.
    idempotency_key text not null unique,
    post_token text not null,
    -- The seller whose token sends it.
    user_id text not null,
    -- The send-message body, as JSON.
    body text not null,
    -- 'paused': the seller must reconnect.
    status text not null check (status in ('running', 'paused', 'cancelled', 'done')),
    paused_reason text,
    total bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

insert into broadcasts_new (broadcast_id, idempotency_key, post_token, user_id, body, status,
    paused_reason, total, created_at, updated_at)
select broadcast_id, idempotency_key, post_token, user_id, body, status,
    paused_reason, total, created_at, updated_at
from broadcasts;

create table outbox_new (
    outbox_id text primary key,
    broadcast_id text references broadcasts_new (broadcast_id),
    message_id text references messages_new (message_id),
    conversation_id text not null,
    -- Sent as Idempotency-Key on every attempt of this row.
    idempotency_key text not null unique,
    -- 0: a person is waiting for it (single sends); 1: bulk (broadcasts). Claimed in this order.
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
select outbox_id, broadcast_id, message_id, conversation_id, idempotency_key, priority,
    status, failure, attempts, next_attempt_at, locked_until, locked_by, created_at, updated_at
from outbox;

create table session_inits_new (
    session_init_id text primary key,
    conversation_id text references conversations (conversation_id),
    post_token text,
    user_id text,
    -- When Divar told us.
    user_side text check (user_side in ('seller', 'buyer')),
    source text not null,
    -- Which documented body the click came in.
    revision text not null check (revision in ('v2', 'original', 'touchpoints')),
    -- The button's open_server_link data, as JSON text.
    extra_data text not null,
    -- Where to return the person: `callback_url` or `completion_url`.
    callback_url text,
    created_at bigint not null,
    updated_at bigint not null
);

insert into session_inits_new (session_init_id, conversation_id, post_token, user_id, user_side,
    source, revision, extra_data, callback_url, created_at, updated_at)
select session_init_id, conversation_id, post_token, user_id, user_side,
    source, revision, extra_data, callback_url, created_at, updated_at
from session_inits;

create table entry_links_new (
    link_hash text primary key,
    session_init_id text not null references session_inits_new (session_init_id),
    expires_at bigint not null,
    used_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);

insert into entry_links_new (link_hash, session_init_id, expires_at, used_at, created_at, updated_at)
select link_hash, session_init_id, expires_at, used_at, created_at, updated_at
from entry_links;

drop table outbox;
drop table messages;
drop table broadcasts;
drop table grants;
drop table entry_links;
drop table session_inits;

alter table grants_new rename to grants;
alter table messages_new rename to messages;
alter table broadcasts_new rename to broadcasts;
alter table outbox_new rename to outbox;
alter table session_inits_new rename to session_inits;
alter table entry_links_new rename to entry_links;

create index session_inits_conversation on session_inits (conversation_id);
create index messages_conversation on messages (conversation_id, created_at);
create index broadcasts_post on broadcasts (post_token, created_at);
create index broadcasts_status on broadcasts (status);
create index outbox_claim_order on outbox (status, priority, next_attempt_at, outbox_id);
create index outbox_broadcast_status on outbox (broadcast_id, status);
