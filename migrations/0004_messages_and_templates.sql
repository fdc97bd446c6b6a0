-- Messages a person sent from the composer. The idempotency key comes from the compose form, so
-- a double submit finds the first row instead of sending again.
create table messages (
    message_id text not null primary key,
    idempotency_key text not null unique,
    conversation_id text not null,
    -- The sender.
    user_id text not null,
    -- The JSON body sent to Divar; `{}` once the purge has cleared it.
    body text not null,
    status text not null check (status in ('sending', 'sent', 'failed')),
    -- Why it failed (`services::delivery::Failure`).
    failure text check (failure in
        ('recipient_restricted', 'reconsent', 'rate_limited', 'unavailable', 'rejected')),
    attempts bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- A conversation's messages, newest first.
create index messages_conversation on messages (conversation_id, created_at);
-- Erasure finds a person's messages by key.
create index messages_user on messages (user_id);

-- Composer drafts a person saved to reuse.
create table templates (
    template_id text not null primary key,
    user_id text not null,
    name text not null,
    -- The composer's fields, as JSON.
    draft text not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- A person's templates, newest first; also their count against the cap, and erasure.
create index templates_user on templates (user_id, created_at);
