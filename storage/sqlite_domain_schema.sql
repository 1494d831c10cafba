-- The embedded mirror of sql/migrations/0003_appointment_desk.sql (the appointment desk).
-- Same tables, columns and rules; ids are UUIDs as text, timestamps are ISO-8601 text in
-- UTC written by the store in one fixed format (so text order is time order).
create table if not exists customers (
    id         text primary key,
    name       text not null check (length(trim(name)) > 0),
    phone      text not null unique,  -- E.164, checked by the store
    zip_code   text not null,
    language   text not null default 'en' check (language in ('en', 'ar')),
    created_at text not null
);

create table if not exists slots (
    id         text primary key,
    starts_at  text not null,
    ends_at    text not null,
    provider   text,
    created_at text not null,
    check (ends_at > starts_at)
);
create index if not exists slots_starts_at_idx on slots (starts_at);
create unique index if not exists slots_provider_starts_at_key on slots (coalesce(provider, ''), starts_at);

create table if not exists appointments (
    id          text primary key,
    customer_id text not null references customers (id) on delete cascade,
    slot_id     text not null references slots (id) on delete restrict,
    status      text not null default 'scheduled' check (status in ('scheduled', 'cancelled', 'completed')),
    reason      text check (reason is null or length(reason) <= 1000),
    created_at  text not null,
    updated_at  text not null
);
-- The rule that makes double booking impossible, as in Postgres.
create unique index if not exists appointments_one_scheduled_per_slot
    on appointments (slot_id) where status = 'scheduled';
create index if not exists appointments_customer_idx on appointments (customer_id, status);
create index if not exists appointments_slot_idx on appointments (slot_id);

create table if not exists callback_requests (
    id              text primary key,
    customer_id     text references customers (id) on delete set null,
    name            text,
    phone           text,
    reason          text not null check (length(reason) <= 2000),
    conversation_id text,
    status          text not null default 'open' check (status in ('open', 'in_progress', 'done', 'cancelled')),
    created_at      text not null
);
create index if not exists callback_requests_status_idx on callback_requests (status, created_at);
create index if not exists callback_requests_customer_idx on callback_requests (customer_id);

create view if not exists appointment_details as
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
from appointments a
join slots s on s.id = a.slot_id;

-- The embedded mirror of sql/migrations/0008_verification_limits.sql: one row per
-- verification attempt, counted per phone and per call source in a sliding window.
create table if not exists verification_attempts (
    id              text primary key,
    phone           text not null,  -- E.164, checked by the store
    source          text check (source is null or length(source) between 1 and 300),
    conversation_id text check (conversation_id is null or length(conversation_id) <= 300),
    succeeded       integer not null default 0 check (succeeded in (0, 1)),
    attempted_at    text not null
);
create index if not exists verification_attempts_phone_idx on verification_attempts (phone, attempted_at);
create index if not exists verification_attempts_source_idx on verification_attempts (source, attempted_at)
    where source is not null;
