-- One-time links are sealed (AES-256-GCM) and carry their click, so session initialization
-- writes no row for them. Opening a link spends it: one row under a hash of the link's random
-- id, which is what makes it single-use. It names no one, and is purged once the link has
-- expired (its seal then refuses it anyway). The click is recorded in `session_inits` then.
-- `entry_links` stays for links the previous release made, until a later release drops it.
create table spent_links (
    link_hash text primary key,
    expires_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
