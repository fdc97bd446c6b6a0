-- One-time links are sealed (AES-256-GCM) and carry their click, so session initialization
-- writes no row for them. Opening a link spends it: one row under a hash of the link's random id,
-- which is what makes it single-use. The row names no one, and the purge deletes it once the
-- link has expired (its seal refuses it from then on anyway).
create table spent_links (
    link_hash text not null primary key,
    expires_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
