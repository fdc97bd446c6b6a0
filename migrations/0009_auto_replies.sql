-- A seller's automatic first reply: a broadcast of kind 'auto_reply' that stays running while it
-- is on. Each conversation of its post that Divar announces after it was turned on gets one
-- outbox row (the outbox's unique (broadcast_id, conversation_id) keeps it to one, however often
-- the buyer writes). Turning it off, or the post's removal, cancels it like any broadcast.
alter table broadcasts add column kind text not null default 'broadcast'
    check (kind in ('broadcast', 'auto_reply'));

-- At most one auto-reply on per post; the new-message webhook finds it by the post.
create unique index broadcasts_one_auto_reply on broadcasts (post_token)
    where kind = 'auto_reply' and status in ('running', 'paused');
