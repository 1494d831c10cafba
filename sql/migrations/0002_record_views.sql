-- Reporting views over conversation records. security_invoker makes them obey the
-- callers' RLS, so anon and authenticated see nothing through them either.

create or replace view public.conversation_stats_by_status
with (security_invoker = true) as
select status,
       count(*)::integer                  as count,
       avg(duration_seconds)::float8       as avg_duration_seconds,
       avg(message_count)::float8          as avg_message_count
from public.conversations
group by status;

create or replace view public.conversation_stats_today
with (security_invoker = true) as
select status,
       count(*)::integer                  as count,
       avg(duration_seconds)::float8       as avg_duration_seconds,
       avg(message_count)::float8          as avg_message_count
from public.conversations
where started_at >= date_trunc('day', now())
group by status;

notify pgrst, 'reload schema';
