-- The operator console: indexes for its list filters (newest first within each filter), the
-- slow-turns-per-day figures its stats page shows beside the other reporting views, and the
-- daily reply latency from a start day (the daily_latency view's figures, without reading
-- every reply ever stored: measured with bench/console.py on 400,000 messages).

create index if not exists conversations_outcome_idx on public.conversations (outcome, started_at desc);
create index if not exists conversations_language_idx on public.conversations (language, started_at desc);
create index if not exists conversations_slow_idx on public.conversations (started_at desc) where slow_turns > 0;

create or replace view public.daily_slow_turns
with (security_invoker = true) as
select date_trunc('day', started_at)::date                 as day,
       count(*)::integer                                     as calls,
       count(*) filter (where slow_turns > 0)::integer       as slow_calls,
       coalesce(sum(slow_turns), 0)::integer                 as slow_turns
from public.conversations
group by 1;

-- Each reply's latency, next to its call: a day's replies are read per call, by index.
create index if not exists messages_reply_latency_idx
    on public.messages (conversation_id, (((metadata -> 'metrics' ->> 'e2e_latency'))::float8))
    where role = 'assistant' and metadata -> 'metrics' ? 'e2e_latency';

-- daily_latency for the days from `since` (UTC): the view filters on its computed day, which no
-- index serves, so the planner joins every stored reply; here the calls are chosen by their start
-- (index) and their replies read through the index above.
create or replace function public.daily_latency_since(since date)
returns table (day date, replies integer, p50_ms float8, p95_ms float8, max_ms float8)
language sql stable security invoker set search_path = '' as $$
    select date_trunc('day', c.started_at)::date                            as day,
           count(*)::integer                                                 as replies,
           percentile_cont(0.5) within group (order by r.ms)                 as p50_ms,
           percentile_cont(0.95) within group (order by r.ms)                as p95_ms,
           max(r.ms)                                                         as max_ms
      from public.conversations c
     cross join lateral (
            select ((m.metadata -> 'metrics' ->> 'e2e_latency'))::float8 * 1000 as ms
              from public.messages m
             where m.conversation_id = c.conversation_id
               and m.role = 'assistant' and m.metadata -> 'metrics' ? 'e2e_latency'
            offset 0  -- keeps the per-call lookup: flattened, the planner joins every reply
           ) r
     where c.started_at >= since::timestamp at time zone 'UTC'
     group by 1
     order by 1
$$;

revoke all on function public.daily_latency_since(date) from public, anon, authenticated;
grant execute on function public.daily_latency_since(date) to service_role;

notify pgrst, 'reload schema';
