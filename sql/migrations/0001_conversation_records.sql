-- Conversation records: one row per call, its turns, its tool calls and its agent runs.
-- Every write from the worker is an idempotent upsert keyed by ids generated in the
-- worker (conversation_id, seq, run_id), so replaying a journal never duplicates rows.

create extension if not exists pgcrypto;

create table if not exists public.conversations (
    id                   uuid primary key default gen_random_uuid(),
    conversation_id      text not null unique,
    room_name            text not null,
    participant_identity text,
    status               text not null default 'active'
                         check (status in ('active', 'completed', 'failed', 'abandoned')),
    started_at           timestamptz not null default now(),
    ended_at             timestamptz,
    duration_seconds     double precision check (duration_seconds >= 0),
    message_count        integer not null default 0 check (message_count >= 0),
    user_name            text,
    user_phone           text,
    user_email           text,
    customer_id          uuid,
    language             text,
    outcome              text,
    summary              text,
    avatar_status        text,
    latency_p50_ms       double precision,
    latency_p95_ms       double precision,
    latency_max_ms       double precision,
    slow_turns           integer,
    metadata             jsonb not null default '{}'::jsonb,
    updated_at           timestamptz not null default now()
);

create or replace function public.set_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

drop trigger if exists conversations_set_updated_at on public.conversations;
create trigger conversations_set_updated_at before update on public.conversations
    for each row execute function public.set_updated_at();

create index if not exists conversations_started_at_idx on public.conversations (started_at desc);
create index if not exists conversations_status_idx on public.conversations (status, started_at desc);
create index if not exists conversations_user_phone_idx on public.conversations (user_phone, started_at desc);

create table if not exists public.agent_runs (
    id                uuid primary key default gen_random_uuid(),
    run_id            text not null unique,
    conversation_id   text not null references public.conversations (conversation_id) on delete cascade,
    agent_type        text not null,
    parent_run_id     text,
    started_at        timestamptz not null,
    ended_at          timestamptz,
    llm_calls         integer not null default 0,
    prompt_tokens     integer not null default 0,
    completion_tokens integer not null default 0,
    total_tokens      integer not null default 0,
    tool_calls        integer not null default 0,
    tool_errors       integer not null default 0,
    feedback          text not null default 'pending'
                      check (feedback in ('pending', 'positive', 'negative', 'neutral')),
    metadata          jsonb not null default '{}'::jsonb
);

create index if not exists agent_runs_conversation_idx on public.agent_runs (conversation_id);

create table if not exists public.messages (
    id              uuid primary key default gen_random_uuid(),
    conversation_id text not null references public.conversations (conversation_id) on delete cascade,
    seq             integer not null check (seq >= 0),
    role            text not null check (role in ('user', 'assistant', 'system', 'developer')),
    content         text not null,
    interrupted     boolean not null default false,
    created_at      timestamptz not null default now(),
    agent_run_id    text,
    metadata        jsonb not null default '{}'::jsonb,
    unique (conversation_id, seq)
);

create table if not exists public.tool_calls (
    id              uuid primary key default gen_random_uuid(),
    conversation_id text not null references public.conversations (conversation_id) on delete cascade,
    seq             integer not null check (seq >= 0),
    call_id         text,
    name            text not null,
    arguments       jsonb not null default '{}'::jsonb,
    output          text,
    is_error        boolean not null default false,
    duration_ms     double precision,
    created_at      timestamptz not null default now(),
    agent_run_id    text,
    unique (conversation_id, seq)
);

-- Service role only: the worker writes with the service-role key; anon and
-- authenticated get nothing (no policy grants them a row).
alter table public.conversations enable row level security;
alter table public.messages enable row level security;
alter table public.tool_calls enable row level security;
alter table public.agent_runs enable row level security;

drop policy if exists service_role_all on public.conversations;
create policy service_role_all on public.conversations for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.messages;
create policy service_role_all on public.messages for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.tool_calls;
create policy service_role_all on public.tool_calls for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.agent_runs;
create policy service_role_all on public.agent_runs for all to service_role using (true) with check (true);

notify pgrst, 'reload schema';
