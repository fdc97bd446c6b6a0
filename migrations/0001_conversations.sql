-- One portable schema for PostgreSQL and SQLite: text ids made by the app, bigint epoch
-- milliseconds for time, no engine-specific types.

-- A chat we have seen through session initialization (or, later, a webhook).
create table conversations (
    conversation_id text primary key,
    post_token text,
    -- Divar user ids of the two sides when known.
    seller_id text,
    buyer_id text,
    created_at bigint not null,
    updated_at bigint not null
);

create index conversations_post_token on conversations (post_token);

-- Every click that brought someone to the add-on: who, from where, with which button data.
create table session_inits (
    session_init_id text primary key,
    conversation_id text references conversations (conversation_id),
    post_token text,
    user_id text,
    -- 'seller' or 'buyer' when Divar told us.
    user_side text,
    source text not null,
    -- 'v2' or 'original' payload revision.
    revision text not null,
    -- The button's open_server_link data, as JSON text.
    extra_data text not null,
    callback_url text,
    created_at bigint not null,
    updated_at bigint not null
);

create index session_inits_conversation on session_inits (conversation_id);
