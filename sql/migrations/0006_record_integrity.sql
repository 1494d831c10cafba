-- Record integrity: how far along a stored conversation record is, and whether it is whole.
--
-- record_events   how many journal events the record was built from. Every call's record
--                 grows one event at a time (the live call, its journal, any replay are
--                 prefixes of the same stream), so this is how far along it is.
-- record_complete false while the record's rows are being written (a write cut after its
--                 first chunks leaves it false), and when the worker knows it held more of
--                 the call than reached the store; metadata.record_at_risk says why.
--
-- A write never moves a record backwards: the trigger below drops an update that carries
-- fewer events, fewer messages or an earlier status than the stored row (a replayed partial
-- journal over a call already saved whole). Operator edits that leave the two columns alone
-- are not record writes and pass unchanged.

alter table public.conversations
    add column if not exists record_events   integer not null default 0 check (record_events >= 0),
    add column if not exists record_complete boolean not null default true;

create index if not exists conversations_incomplete_idx
    on public.conversations (started_at desc) where not record_complete;

create or replace function public.keep_the_further_record() returns trigger
language plpgsql set search_path = '' as $$
declare
    new_rank integer := case new.status when 'active' then 0 when 'abandoned' then 1 else 2 end;
    old_rank integer := case old.status when 'active' then 0 when 'abandoned' then 1 else 2 end;
begin
    if (new.record_events, new.record_complete) is not distinct from (old.record_events, old.record_complete) then
        return new;
    end if;
    if new.record_events < old.record_events
       or new.message_count < old.message_count
       or new_rank < old_rank
       or (new.record_events = old.record_events and old.record_events > 0
           and old.record_complete and not new.record_complete) then
        return null;  -- the stored record is further along (or as far and whole): keep it
    end if;
    return new;
end;
$$;

drop trigger if exists conversations_keep_the_further_record on public.conversations;
create trigger conversations_keep_the_further_record before update on public.conversations
    for each row execute function public.keep_the_further_record();

revoke all on function public.keep_the_further_record() from public, anon, authenticated;

notify pgrst, 'reload schema';
