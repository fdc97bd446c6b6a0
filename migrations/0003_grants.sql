-- OAuth tokens a person granted: per conversation (CONVERSATION_SEND_MESSAGE.<id>) or per post
-- (CHAT_POST_CONVERSATIONS_MESSAGE_SEND.<token>). The token columns hold AES-256-GCM ciphertext
-- bound to the row, the column, the subject and the user; `key_version` names the key that
-- sealed them, so keys can rotate (`kenar-chat rekey`).
create table grants (
    grant_id text not null primary key,
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
    -- One grant per person and subject. The user comes first, so erasure finds a person's
    -- grants through this index too.
    unique (user_id, subject_kind, subject_id)
);
