-- One-time links that session initialization hands to Divar. Only a hash of the link's token is
-- kept, so a database dump cannot replay a link.
create table entry_links (
    link_hash text primary key,
    session_init_id text not null references session_inits (session_init_id),
    expires_at bigint not null,
    used_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);

-- Server-side web sessions (tower-sessions records), so they survive restarts and are shared by
-- replicas. `data` is the session's JSON.
create table web_sessions (
    session_id text primary key,
    data text not null,
    expires_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index web_sessions_expires_at on web_sessions (expires_at);

-- OAuth tokens a user granted: per conversation (CONVERSATION_SEND_MESSAGE.<id>) or per post
-- (CHAT_POST_CONVERSATIONS_MESSAGE_SEND.<token>). Token columns hold AES-256-GCM ciphertext bound
-- to the grant id; `key_version` says which key sealed them.
create table grants (
    grant_id text primary key,
    -- 'conversation' or 'post'
    subject_kind text not null,
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

-- Messages sent through the add-on. The idempotency key comes from the compose form, so a
-- double submit finds the first row instead of sending again.
create table messages (
    message_id text primary key,
    idempotency_key text not null unique,
    conversation_id text not null,
    user_id text not null,
    -- The JSON body sent to Divar.
    body text not null,
    -- 'sending', 'sent' or 'failed'
    status text not null,
    -- Why it failed: 'recipient_restricted', 'reconsent', 'rate_limited', 'unavailable', 'rejected'.
    failure text,
    attempts bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index messages_conversation on messages (conversation_id, created_at);

-- Composer drafts a user saved to reuse.
create table templates (
    template_id text primary key,
    user_id text not null,
    name text not null,
    -- The composer's fields as JSON.
    draft text not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index templates_user on templates (user_id, created_at);
