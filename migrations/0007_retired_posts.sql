-- Posts Divar reported removed (a POST_UPDATE of type RETIRE or ARCHIVE): their running
-- broadcasts are cancelled and no new one starts. The row names no one (a post token is public),
-- and goes when the post's conversations do (KENAR_CONVERSATION_RETENTION_DAYS).
create table retired_posts (
    post_token text not null primary key,
    -- RETIRE or ARCHIVE, as Divar said.
    change text not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- Why a broadcast stopped before its end: 'reconsent' (paused until the seller connects again)
-- or 'post_removed' (cancelled: Divar reported the post removed). Null for the rest.
alter table broadcasts rename column paused_reason to stop_reason;
