-- Demo data for the appointment desk: four customers (English and Arabic), two weeks of
-- bookable slots from today, and a few scheduled appointments.
--
-- Run it in the Supabase SQL editor or with psql, after the migrations. It is idempotent:
-- fixed ids and `on conflict do nothing` everywhere, so running it again (even days later)
-- only adds the slots of the days that are new. storage/demo_data.py loads exactly the same
-- customers, slots and appointments into the embedded SQLite store; keep the two in step.
--
-- Clinic: Asia/Damascus time, Sunday to Thursday (never a Friday), 09:00-17:00 local, 30-minute slots, one
-- provider. Times are generated relative to now(), so the demo always has future slots.

do $$
declare
    v_tz        constant text := 'Asia/Damascus';
    v_provider  constant text := 'Dr. Rana Khoury';
    v_today     constant date := (now() at time zone v_tz)::date;
begin
    insert into public.customers (id, name, phone, zip_code, language) values
        ('5eed0000-0000-4000-8000-000000000001', 'أحمد المصري', '+963991234567', '11001', 'ar'),
        ('5eed0000-0000-4000-8000-000000000002', 'Sarah Johnson', '+14155550100', '94103', 'en'),
        ('5eed0000-0000-4000-8000-000000000003', 'ليلى حداد', '+963944556677', '21100', 'ar'),
        ('5eed0000-0000-4000-8000-000000000004', 'Omar Khalil', '+14155550123', '94110', 'en')
    on conflict do nothing;

    -- Today and the next 13 days, opening days only (isodow 7, 1-4: Sunday to Thursday), 16 half-hour slots from 09:00 local time,
    -- future ones only.
    insert into public.slots (starts_at, ends_at, provider)
    select (day + time '09:00' + k * interval '30 minutes') at time zone v_tz,
           (day + time '09:00' + (k + 1) * interval '30 minutes') at time zone v_tz,
           v_provider
      from generate_series(0, 13) as i
     cross join lateral (select v_today + i as day) as d
     cross join generate_series(0, 15) as k
     where extract(isodow from day) in (7, 1, 2, 3, 4)
       and (day + time '09:00' + k * interval '30 minutes') at time zone v_tz > now()
    on conflict do nothing;

    -- Appointments on the n-th opening day after today, at a local time.
    insert into public.appointments (id, customer_id, slot_id, reason)
    select plan.id, plan.customer_id, s.id, plan.reason
      from (values
            ('5eed0000-0000-4000-8000-0000000000a1'::uuid, '5eed0000-0000-4000-8000-000000000001'::uuid,
             2, time '10:00', 'فحص دوري'),
            ('5eed0000-0000-4000-8000-0000000000a2'::uuid, '5eed0000-0000-4000-8000-000000000002'::uuid,
             3, time '14:30', 'Annual check-up'),
            ('5eed0000-0000-4000-8000-0000000000a3'::uuid, '5eed0000-0000-4000-8000-000000000003'::uuid,
             5, time '11:00', 'متابعة نتائج التحاليل')
           ) as plan (id, customer_id, nth_weekday, local_time, reason)
      join (select day, row_number() over (order by day) as n
              from (select v_today + i as day from generate_series(1, 13) as i) as days
             where extract(isodow from day) in (7, 1, 2, 3, 4)) as weekdays
        on weekdays.n = plan.nth_weekday
      join public.slots s
        on s.provider = v_provider
       and s.starts_at = (weekdays.day + plan.local_time) at time zone v_tz
    on conflict do nothing;
end
$$;
