-- The embedded mirror of sql/migrations (conversation records). Same columns; JSON is
-- stored as text, booleans as 0/1, timestamps as ISO-8601 text in UTC.
create table if not exists conversations (
    id                   integer primary key,
    conversation_id      text not null unique,
    room_name            text not null,
    participant_identity text,
    status               text not null default 'active'
                         check (status in ('active', 'completed', 'failed', 'abandoned')),
    started_at           text not null,
    ended_at             text,
    duration_seconds     real check (duration_seconds >= 0),
    message_count        integer not null default 0 check (message_count >= 0),
    user_name            text,
    user_phone           text,
    user_email           text,
    customer_id          text,
    language             text,
    outcome              text,
    summary              text,
    avatar_status        text,
    latency_p50_ms       real,
    latency_p95_ms       real,
    latency_max_ms       real,
    slow_turns           integer,
    metadata             text not null default '{}',
    updated_at           text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_events        integer not null default 0 check (record_events >= 0),
    record_complete      integer not null default 1
);
create trigger if not exists conversations_set_updated_at after update on conversations
    for each row when new.updated_at = old.updated_at begin
        update conversations set updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id = new.id;
    end;
-- sql/migrations/0006_record_integrity.sql: a record write never moves a record backwards.
create trigger if not exists conversations_keep_the_further_record before update on conversations
    for each row
    when (new.record_events is not old.record_events or new.record_complete is not old.record_complete)
     and (new.record_events < old.record_events
          or new.message_count < old.message_count
          or (case new.status when 'active' then 0 when 'abandoned' then 1 else 2 end)
             < (case old.status when 'active' then 0 when 'abandoned' then 1 else 2 end)
          or (new.record_events = old.record_events and old.record_events > 0
              and old.record_complete and not new.record_complete))
    begin
        select raise(ignore);
    end;
create index if not exists conversations_started_at_idx on conversations (started_at desc);
create index if not exists conversations_status_idx on conversations (status, started_at desc);
create index if not exists conversations_user_phone_idx on conversations (user_phone, started_at desc);
-- sql/migrations/0007_call_language.sql
create index if not exists conversations_language_idx on conversations (language, started_at desc);

create table if not exists agent_runs (
    id                integer primary key,
    run_id            text not null unique,
    conversation_id   text not null references conversations (conversation_id) on delete cascade,
    agent_type        text not null,
    parent_run_id     text,
    started_at        text not null,
    ended_at          text,
    llm_calls         integer not null default 0,
    prompt_tokens     integer not null default 0,
    completion_tokens integer not null default 0,
    total_tokens      integer not null default 0,
    tool_calls        integer not null default 0,
    tool_errors       integer not null default 0,
    feedback          text not null default 'pending'
                      check (feedback in ('pending', 'positive', 'negative', 'neutral')),
    metadata          text not null default '{}'
);
create index if not exists agent_runs_conversation_idx on agent_runs (conversation_id);

create table if not exists messages (
    id              integer primary key,
    conversation_id text not null references conversations (conversation_id) on delete cascade,
    seq             integer not null check (seq >= 0),
    role            text not null check (role in ('user', 'assistant', 'system', 'developer')),
    content         text not null,
    interrupted     integer not null default 0,
    created_at      text not null,
    agent_run_id    text,
    metadata        text not null default '{}',
    unique (conversation_id, seq)
);

create table if not exists tool_calls (
    id              integer primary key,
    conversation_id text not null references conversations (conversation_id) on delete cascade,
    seq             integer not null check (seq >= 0),
    call_id         text,
    name            text not null,
    arguments       text not null default '{}',
    output          text,
    is_error        integer not null default 0,
    duration_ms     real,
    created_at      text not null,
    agent_run_id    text,
    unique (conversation_id, seq)
);
-- sql/migrations/0007_call_language.sql
create index if not exists messages_language_idx on messages (json_extract(metadata, '$.language'), conversation_id);

-- The operator console's list filters (sql/migrations/0010_console_indexes.sql).
create index if not exists conversations_outcome_idx on conversations (outcome, started_at desc);
create index if not exists conversations_language_idx on conversations (language, started_at desc);
create index if not exists conversations_slow_idx on conversations (started_at desc) where slow_turns > 0;
