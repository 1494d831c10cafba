-- Reporting views for operators (security_invoker: they obey the caller's RLS).

create or replace view public.daily_call_volume
with (security_invoker = true) as
select date_trunc('day', started_at)::date                  as day,
       count(*)::integer                                      as calls,
       count(*) filter (where status = 'completed')::integer  as completed,
       count(*) filter (where status = 'abandoned')::integer  as abandoned,
       count(*) filter (where status = 'failed')::integer     as failed,
       avg(duration_seconds)::float8                          as avg_duration_seconds
from public.conversations
group by 1;

create or replace view public.daily_outcomes
with (security_invoker = true) as
select date_trunc('day', started_at)::date as day,
       coalesce(outcome, 'unknown')        as outcome,
       count(*)::integer                   as calls
from public.conversations
group by 1, 2;

create or replace view public.daily_latency
with (security_invoker = true) as
select date_trunc('day', c.started_at)::date                                                   as day,
       count(*)::integer                                                                        as replies,
       percentile_cont(0.5) within group (order by (m.metadata -> 'metrics' ->> 'e2e_latency')::float8 * 1000)
                                                                                                as p50_ms,
       percentile_cont(0.95) within group (order by (m.metadata -> 'metrics' ->> 'e2e_latency')::float8 * 1000)
                                                                                                as p95_ms,
       max((m.metadata -> 'metrics' ->> 'e2e_latency')::float8 * 1000)                          as max_ms
from public.messages m
join public.conversations c on c.conversation_id = m.conversation_id
where m.role = 'assistant' and m.metadata -> 'metrics' ? 'e2e_latency'
group by 1;

create or replace view public.agent_usage_by_type
with (security_invoker = true) as
select agent_type,
       count(*)::integer                 as runs,
       sum(llm_calls)::bigint            as llm_calls,
       sum(prompt_tokens)::bigint        as prompt_tokens,
       sum(completion_tokens)::bigint    as completion_tokens,
       sum(total_tokens)::bigint         as total_tokens,
       sum(tool_calls)::bigint           as tool_calls,
       sum(tool_errors)::bigint          as tool_errors
from public.agent_runs
group by agent_type;

create or replace view public.tool_error_rates
with (security_invoker = true) as
select name,
       count(*)::integer                                   as calls,
       count(*) filter (where is_error)::integer           as errors,
       (count(*) filter (where is_error))::float8 / count(*) as error_rate,
       avg(duration_ms)::float8                            as avg_duration_ms
from public.tool_calls
group by name;

notify pgrst, 'reload schema';
