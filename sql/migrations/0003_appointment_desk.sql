-- The appointment desk: customers, bookable slots, appointments and callback requests.
--
-- Double booking is impossible by constraint: a partial unique index allows one
-- *scheduled* appointment per slot, so two callers racing for the same slot cannot both
-- win, whatever the application does. Multi-step changes (book, reschedule, cancel) are
-- SQL functions called through PostgREST's /rpc: each call is one transaction, and each
-- takes the customer's id and filters by it, so an appointment id belonging to someone
-- else is simply "not found".
--
-- Errors the worker maps (storage/domain_supabase.py):
--   PT404                    -> NotFound  (no such customer / slot / scheduled appointment of this customer)
--   23505 (unique_violation) -> SlotTaken (the slot already has a scheduled appointment)
-- PT404 is PostgREST's "custom status" SQLSTATE: the HTTP answer is a 404, not the 500 that
-- P0002 (no_data_found) would give, so a caller asking for a wrong id is not a server error
-- in gateway logs and alerts. In the SQL editor it reads as an ordinary error message.
--
-- Access: RLS on every table with only a service_role policy (like 0001), and on top of
-- that anon and authenticated lose their table grants and may not execute the functions:
-- customer phones are personal data, so "no policy" alone is not the only barrier.

create extension if not exists pgcrypto;

-- ------------------------------------------------------------------------ tables

create table if not exists public.customers (
    id         uuid primary key default gen_random_uuid(),
    name       text not null check (char_length(btrim(name)) > 0),
    phone      text not null unique check (phone ~ '^\+[1-9][0-9]{6,14}$'),  -- E.164
    zip_code   text not null,
    language   text not null default 'en' check (language in ('en', 'ar')),
    created_at timestamptz not null default now()
);

create table if not exists public.slots (
    id         uuid primary key default gen_random_uuid(),
    starts_at  timestamptz not null,
    ends_at    timestamptz not null,
    provider   text,
    created_at timestamptz not null default now(),
    check (ends_at > starts_at)
);

-- Open-slot searches scan by start time; a provider cannot have two slots starting at
-- the same instant (this also makes the demo seed idempotent).
create index if not exists slots_starts_at_idx on public.slots (starts_at);
create unique index if not exists slots_provider_starts_at_key on public.slots ((coalesce(provider, '')), starts_at);

create table if not exists public.appointments (
    id          uuid primary key default gen_random_uuid(),
    customer_id uuid not null references public.customers (id) on delete cascade,
    slot_id     uuid not null references public.slots (id) on delete restrict,
    status      text not null default 'scheduled' check (status in ('scheduled', 'cancelled', 'completed')),
    reason      text check (reason is null or char_length(reason) <= 1000),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- The rule that makes double booking impossible. It also serves "is this slot open?".
create unique index if not exists appointments_one_scheduled_per_slot
    on public.appointments (slot_id) where status = 'scheduled';
-- A customer's appointments (every read is scoped by customer_id).
create index if not exists appointments_customer_idx on public.appointments (customer_id, status);
-- The foreign key to slots (cancelled/completed rows too, for slot deletes and history).
create index if not exists appointments_slot_idx on public.appointments (slot_id);

create table if not exists public.callback_requests (
    id              uuid primary key default gen_random_uuid(),
    customer_id     uuid references public.customers (id) on delete set null,
    name            text,
    phone           text,
    reason          text not null check (char_length(reason) <= 2000),
    conversation_id text,  -- no foreign key: the conversation row is written at the end of the call
    status          text not null default 'open' check (status in ('open', 'in_progress', 'done', 'cancelled')),
    created_at      timestamptz not null default now()
);

create index if not exists callback_requests_status_idx on public.callback_requests (status, created_at);
create index if not exists callback_requests_customer_idx on public.callback_requests (customer_id);

-- Keep updated_at honest for changes made by hand in the SQL editor too.
create or replace function public.appointments_touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

drop trigger if exists appointments_touch_updated_at on public.appointments;
create trigger appointments_touch_updated_at
    before update on public.appointments
    for each row execute function public.appointments_touch_updated_at();

-- ------------------------------------------------------------------------ view

-- One appointment with its slot: what the worker reads and the functions return.
create or replace view public.appointment_details
with (security_invoker = true) as
select a.id,
       a.customer_id,
       a.status,
       a.reason,
       a.created_at,
       a.updated_at,
       s.id        as slot_id,
       s.starts_at,
       s.ends_at,
       s.provider
from public.appointments a
join public.slots s on s.id = a.slot_id;

-- ------------------------------------------------------------------------ functions

-- Slots starting in [p_from, p_to) with no scheduled appointment, soonest first.
create or replace function public.open_slots(p_from timestamptz, p_to timestamptz, p_limit integer default 10)
returns setof public.slots
language sql
stable
security invoker
set search_path = ''
as $$
    select s.*
      from public.slots s
     where s.starts_at >= p_from
       and s.starts_at < p_to
       and not exists (
           select 1 from public.appointments a where a.slot_id = s.id and a.status = 'scheduled'
       )
     order by s.starts_at, s.id
     limit greatest(least(coalesce(p_limit, 10), 100), 0)
$$;

create or replace function public.book_appointment(p_customer_id uuid, p_slot_id uuid, p_reason text default null)
returns public.appointment_details
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_id  uuid;
    v_row public.appointment_details;
begin
    perform 1 from public.customers where id = p_customer_id;
    if not found then
        raise exception 'customer % not found', p_customer_id using errcode = 'PT404';
    end if;
    perform 1 from public.slots where id = p_slot_id;
    if not found then
        raise exception 'slot % not found', p_slot_id using errcode = 'PT404';
    end if;
    -- A concurrent booking of the same slot waits here on the unique index and then
    -- fails with 23505 (unique_violation): the loser of the race gets SlotTaken.
    insert into public.appointments (customer_id, slot_id, reason)
    values (p_customer_id, p_slot_id, p_reason)
    returning id into v_id;
    select * into v_row from public.appointment_details where id = v_id;
    return v_row;
end;
$$;

create or replace function public.reschedule_appointment(p_customer_id uuid, p_appointment_id uuid, p_new_slot_id uuid)
returns public.appointment_details
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.appointment_details;
begin
    -- Lock the customer's scheduled appointment: a concurrent cancel or reschedule of it waits.
    perform 1 from public.appointments
     where id = p_appointment_id and customer_id = p_customer_id and status = 'scheduled'
       for update;
    if not found then
        raise exception 'appointment % not found', p_appointment_id using errcode = 'PT404';
    end if;
    perform 1 from public.slots where id = p_new_slot_id;
    if not found then
        raise exception 'slot % not found', p_new_slot_id using errcode = 'PT404';
    end if;
    -- Moving frees the old slot and takes the new one in one statement; a taken slot
    -- raises 23505 and the whole call rolls back, so nothing changes.
    update public.appointments
       set slot_id = p_new_slot_id
     where id = p_appointment_id and customer_id = p_customer_id;
    select * into v_row from public.appointment_details where id = p_appointment_id;
    return v_row;
end;
$$;

create or replace function public.cancel_appointment(p_customer_id uuid, p_appointment_id uuid)
returns public.appointment_details
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.appointment_details;
begin
    update public.appointments
       set status = 'cancelled'
     where id = p_appointment_id and customer_id = p_customer_id and status = 'scheduled';
    if not found then
        raise exception 'appointment % not found', p_appointment_id using errcode = 'PT404';
    end if;
    select * into v_row from public.appointment_details where id = p_appointment_id;
    return v_row;
end;
$$;

-- ------------------------------------------------------------------------ access

alter table public.customers enable row level security;
alter table public.slots enable row level security;
alter table public.appointments enable row level security;
alter table public.callback_requests enable row level security;

drop policy if exists service_role_all on public.customers;
create policy service_role_all on public.customers for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.slots;
create policy service_role_all on public.slots for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.appointments;
create policy service_role_all on public.appointments for all to service_role using (true) with check (true);
drop policy if exists service_role_all on public.callback_requests;
create policy service_role_all on public.callback_requests for all to service_role using (true) with check (true);

revoke all on table public.customers, public.slots, public.appointments, public.callback_requests,
    public.appointment_details from anon, authenticated;
grant select, insert, update, delete on table public.customers, public.slots, public.appointments,
    public.callback_requests to service_role;
grant select on table public.appointment_details to service_role;

-- Functions are executable by PUBLIC by default, and Supabase's default privileges grant
-- them to anon and authenticated as well: take both away.
revoke all on function public.open_slots(timestamptz, timestamptz, integer) from public, anon, authenticated;
revoke all on function public.book_appointment(uuid, uuid, text) from public, anon, authenticated;
revoke all on function public.reschedule_appointment(uuid, uuid, uuid) from public, anon, authenticated;
revoke all on function public.cancel_appointment(uuid, uuid) from public, anon, authenticated;
revoke all on function public.appointments_touch_updated_at() from public, anon, authenticated;
grant execute on function public.open_slots(timestamptz, timestamptz, integer) to service_role;
grant execute on function public.book_appointment(uuid, uuid, text) to service_role;
grant execute on function public.reschedule_appointment(uuid, uuid, uuid) to service_role;
grant execute on function public.cancel_appointment(uuid, uuid) to service_role;

notify pgrst, 'reload schema';
