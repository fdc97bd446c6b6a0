-- Server-side web sessions (tower-sessions records), so sessions survive restarts and are shared
-- by replicas. `session_id` is a SHA-256 of the cookie's id: a copy of the table (a backup, a
-- replica's disk) opens no session.
create table web_sessions (
    session_id text not null primary key,
    -- The visitor, copied by the session store from the session's data, so erasure finds a
    -- person's sessions by key instead of searching the serialized data.
    user_id text,
    -- The session's data, as JSON.
    data text not null,
    expires_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index web_sessions_user on web_sessions (user_id);
-- The purge deletes expired sessions.
create index web_sessions_expires_at on web_sessions (expires_at);
