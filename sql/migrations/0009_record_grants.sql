-- The record tables and views lose their grants to anon and authenticated, as the
-- appointment tables did in 0003: row-level security stays on, but it is no longer the
-- only barrier. Without a grant, PostgREST (which lists what the requesting role may use)
-- shows anon and signed-in users no record relation in its OpenAPI document, and every
-- request is refused by Postgres with 42501 instead of answering 200 with no rows.
--
-- Then the same for every other relation and function of the public schema that still
-- carries such grants (Supabase grants them on everything by default), and the default
-- privileges are changed so that a table, view, sequence or function created later is not
-- granted to anon or authenticated either: a new table must be granted on purpose.

revoke all on table public.conversations, public.messages, public.tool_calls, public.agent_runs
    from public, anon, authenticated;
revoke all on table public.conversation_stats_by_status, public.conversation_stats_today,
    public.daily_call_volume, public.daily_outcomes, public.daily_latency,
    public.agent_usage_by_type, public.tool_error_rates
    from public, anon, authenticated;

grant select, insert, update, delete on table public.conversations, public.messages, public.tool_calls,
    public.agent_runs to service_role;
grant select on table public.conversation_stats_by_status, public.conversation_stats_today,
    public.daily_call_volume, public.daily_outcomes, public.daily_latency,
    public.agent_usage_by_type, public.tool_error_rates to service_role;

do $$
declare
    r record;
begin
    for r in
        select c.relname, c.relkind
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
           and (has_table_privilege('anon', c.oid, 'SELECT,INSERT,UPDATE,DELETE')
                or has_table_privilege('authenticated', c.oid, 'SELECT,INSERT,UPDATE,DELETE')
                or (c.relkind = 'S' and (has_sequence_privilege('anon', c.oid, 'USAGE,SELECT,UPDATE')
                                         or has_sequence_privilege('authenticated', c.oid, 'USAGE,SELECT,UPDATE'))))
    loop
        execute format('revoke all on %s public.%I from public, anon, authenticated',
                       case when r.relkind = 'S' then 'sequence' else 'table' end, r.relname);
    end loop;
    for r in
        select p.oid::regprocedure as signature
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.prokind = 'f'
           and (has_function_privilege('anon', p.oid, 'EXECUTE')
                or has_function_privilege('authenticated', p.oid, 'EXECUTE'))
    loop
        execute format('revoke all on function %s from public, anon, authenticated', r.signature);
    end loop;
end;
$$;

alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated;
alter default privileges for role postgres in schema public revoke all on functions from public, anon, authenticated;

notify pgrst, 'reload schema';
