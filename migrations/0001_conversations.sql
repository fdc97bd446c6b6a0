-- One schema for PostgreSQL and SQLite, run unchanged on both: text ids made by the app, bigint
-- epoch milliseconds for time, no engine-specific types. Primary keys say `not null` because
-- SQLite would otherwise accept a null key (PostgreSQL implies it). A column that names a Divar
-- user is `user_id` or `<role>_user_id`: erasure finds a person's rows by those names.

-- A chat the add-on has seen, through a click (session initialization) or a webhook.
create table conversations (
    conversation_id text not null primary key,
    post_token text,
    -- The two sides, once a click has said who they are.
    seller_user_id text,
    buyer_user_id text,
    created_at bigint not null,
    updated_at bigint not null
);

-- A post's conversations: the post page, and who a broadcast reaches. The user columns have no
-- index: session initialization writes this table on every click while Divar waits, and each
-- index is one more write there; erasure, which is rare, reads the table through instead.
create index conversations_post on conversations (post_token);

-- A click that opened the add-on, recorded when its one-time link is opened: who, from where,
-- with which button data.
create table session_inits (
    session_init_id text not null primary key,
    conversation_id text references conversations (conversation_id),
    post_token text,
    -- Who clicked. Divar's touch-points body names nobody; consent fills it in then.
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

-- Erasure finds a person's clicks by key.
create index session_inits_user on session_inits (user_id);
