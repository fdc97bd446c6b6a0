-- A seller's own words for their post's «هنوز موجود است؟» button, which Divar asks the add-on
-- about when a buyer taps it (a dynamic action). Without a row the add-on's default words answer.
create table availability_answers (
    post_token text not null primary key,
    -- The post's owner, who wrote them.
    user_id text not null,
    available_text text not null,
    removed_text text not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- Erasure of a seller.
create index availability_answers_user on availability_answers (user_id);
