-- The operator console: indexes for its list filters (newest first within each filter) and
-- the slow-turns-per-day figures its stats page shows beside the other reporting views.

create index if not exists conversations_outcome_idx on public.conversations (outcome, started_at desc);
create index if not exists conversations_language_idx on public.conversations (language, started_at desc);
create index if not exists conversations_slow_idx on public.conversations (started_at desc) where slow_turns > 0;
create index if not exists conversations_incomplete_idx on public.conversations (started_at desc)
    where (metadata ->> 'incomplete') = 'true';

create or replace view public.daily_slow_turns
with (security_invoker = true) as
select date_trunc('day', started_at)::date                 as day,
       count(*)::integer                                     as calls,
       count(*) filter (where slow_turns > 0)::integer       as slow_calls,
       coalesce(sum(slow_turns), 0)::integer                 as slow_turns
from public.conversations
group by 1;

notify pgrst, 'reload schema';
