-- Verification limits across calls: failed verifications are counted per customer phone
-- (and per call source: the SIP caller's number or the browser participant's identity)
-- in a sliding time window, in the store, so redialling or calling in parallel does not
-- buy more guesses.
--
-- An attempt is claimed *before* the ZIP code is compared: `begin_verification_attempt`
-- takes an advisory lock on the phone (and the source), counts the failures in the window,
-- and either refuses (locked) or records the attempt as failed and returns the customer.
-- The worker compares the ZIP code and, only if it matches, calls
-- `mark_verification_succeeded`, which turns the attempt into a success: failures before a
-- success no longer count for that phone. Parallel claims for one phone queue on the lock,
-- so no more than the limit can ever reach a comparison; a worker that dies between the
-- two calls leaves a failure behind (the safe side).
--
-- Access: RLS with only a service_role policy, table grants revoked from anon and
-- authenticated, functions executable by service_role only (like 0003).

create table if not exists public.verification_attempts (
    id              uuid primary key default gen_random_uuid(),
    phone           text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),  -- E.164
    source          text check (source is null or char_length(source) between 1 and 300),
    conversation_id text check (conversation_id is null or char_length(conversation_id) <= 300),
    succeeded       boolean not null default false,
    attempted_at    timestamptz not null default now()
);

create index if not exists verification_attempts_phone_idx on public.verification_attempts (phone, attempted_at);
create index if not exists verification_attempts_source_idx
    on public.verification_attempts (source, attempted_at) where source is not null;

-- One attempt: refused (locked), or counted as a failure and answered with the phone's
-- customer (none for an unknown phone: an unknown phone and a wrong ZIP cost the same).
-- status: 'locked' (no attempt recorded; retry_after_seconds until one is allowed) or
-- 'claimed' (attempt_id to mark a success with; failures counted for the phone, this one
-- included; retry_after_seconds until the phone unlocks again if this attempt fails and
-- reaches the limit).
create or replace function public.begin_verification_attempt(
    p_phone text,
    p_source text,
    p_conversation_id text,
    p_window_seconds integer,
    p_phone_limit integer,
    p_source_limit integer
)
returns table (
    status              text,
    attempt_id          uuid,
    failures            integer,
    retry_after_seconds double precision,
    customer_id         uuid,
    name                text,
    phone               text,
    zip_code            text,
    language            text
)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
    v_window   interval;
    v_since    timestamptz;
    v_count    integer;
    v_oldest   timestamptz;
    v_attempt  uuid;
    v_customer public.customers;
    v_now      timestamptz;
begin
    if p_phone is null or p_phone !~ '^\+[1-9][0-9]{6,14}$' then
        raise exception 'phone must be E.164' using errcode = '22023';
    end if;
    if coalesce(p_window_seconds, 0) < 1 or coalesce(p_phone_limit, 0) < 1 or coalesce(p_source_limit, 0) < 1 then
        raise exception 'window and limits must be positive' using errcode = '22023';
    end if;
    v_window := make_interval(secs => p_window_seconds);
    -- Phone first, then source, always in this order: two claims cannot wait on each other.
    perform pg_advisory_xact_lock(hashtext('verification.phone'), hashtext(p_phone));
    if p_source is not null then
        perform pg_advisory_xact_lock(hashtext('verification.source'), hashtext(p_source));
    end if;
    -- The time once the locks are held (now() is the transaction's start, before any wait),
    -- so attempts are stored in the order they were counted.
    v_now := clock_timestamp();

    -- The phone's failures since the later of the window start and its last success.
    select greatest(v_now - v_window, coalesce(max(a.attempted_at), '-infinity'::timestamptz))
      into v_since
      from public.verification_attempts a
     where a.phone = p_phone and a.succeeded;
    select count(*) into v_count
      from public.verification_attempts a
     where a.phone = p_phone and not a.succeeded and a.attempted_at > v_since;
    if v_count >= p_phone_limit then
        -- Locked until enough failures leave the window to allow one more attempt.
        select a.attempted_at into v_oldest
          from public.verification_attempts a
         where a.phone = p_phone and not a.succeeded and a.attempted_at > v_since
         order by a.attempted_at
         offset v_count - p_phone_limit limit 1;
        return query select 'locked'::text, null::uuid, v_count,
            greatest(extract(epoch from v_oldest + v_window - v_now)::double precision, 1.0),
            null::uuid, null::text, null::text, null::text, null::text;
        return;
    end if;

    if p_source is not null then
        select count(*) into v_count
          from public.verification_attempts a
         where a.source = p_source and not a.succeeded and a.attempted_at > v_now - v_window;
        if v_count >= p_source_limit then
            select a.attempted_at into v_oldest
              from public.verification_attempts a
             where a.source = p_source and not a.succeeded and a.attempted_at > v_now - v_window
             order by a.attempted_at
             offset v_count - p_source_limit limit 1;
            return query select 'locked'::text, null::uuid, v_count,
                greatest(extract(epoch from v_oldest + v_window - v_now)::double precision, 1.0),
                null::uuid, null::text, null::text, null::text, null::text;
            return;
        end if;
    end if;

    insert into public.verification_attempts (phone, source, conversation_id, attempted_at)
    values (p_phone, p_source, p_conversation_id, v_now)
    returning id into v_attempt;
    -- Old attempts of this phone and source are no use to any window: keep the table small.
    delete from public.verification_attempts a
     where (a.phone = p_phone or a.source = p_source)
       and a.attempted_at < v_now - greatest(v_window, interval '1 day');

    select count(*), min(a.attempted_at) into v_count, v_oldest
      from public.verification_attempts a
     where a.phone = p_phone and not a.succeeded and a.attempted_at > v_since;
    select * into v_customer from public.customers c where c.phone = p_phone;
    return query select 'claimed'::text, v_attempt, v_count,
        greatest(extract(epoch from v_oldest + v_window - v_now)::double precision, 1.0),
        v_customer.id, v_customer.name, v_customer.phone, v_customer.zip_code, v_customer.language;
end;
$$;

-- The claimed attempt matched: it becomes a success, which resets the phone's count.
create or replace function public.mark_verification_succeeded(p_attempt_id uuid)
returns void
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
    update public.verification_attempts set succeeded = true where id = p_attempt_id;
    if not found then
        raise exception 'verification attempt % not found', p_attempt_id using errcode = 'PT404';
    end if;
end;
$$;

alter table public.verification_attempts enable row level security;
drop policy if exists service_role_all on public.verification_attempts;
create policy service_role_all on public.verification_attempts
    for all to service_role using (true) with check (true);

revoke all on table public.verification_attempts from public, anon, authenticated;
grant select, insert, update, delete on table public.verification_attempts to service_role;

revoke all on function public.begin_verification_attempt(text, text, text, integer, integer, integer)
    from public, anon, authenticated;
revoke all on function public.mark_verification_succeeded(uuid) from public, anon, authenticated;
grant execute on function public.begin_verification_attempt(text, text, text, integer, integer, integer)
    to service_role;
grant execute on function public.mark_verification_succeeded(uuid) to service_role;

notify pgrst, 'reload schema';
