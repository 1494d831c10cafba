-- Supabase-style roles, auth helpers and grants for the local test stack
-- (scripts/local_supabase.py). Run as the superuser with psql, before the
-- migrations in sql/migrations/, with:
--   psql -X -v ON_ERROR_STOP=1 -v authenticator_password=... -f scripts/supabase_roles.sql
-- Idempotent: it can be run again on a database that already has these roles.
-- It mirrors what a hosted Supabase project provides, not all of it: no auth.users,
-- no storage, no realtime.

-- API roles. PostgREST logs in as `authenticator` and switches to the role named in
-- the JWT's `role` claim (or to `anon` without a JWT).
select 'create role anon nologin noinherit'
where not exists (select from pg_roles where rolname = 'anon') \gexec
select 'create role authenticated nologin noinherit'
where not exists (select from pg_roles where rolname = 'authenticated') \gexec
select 'create role service_role nologin noinherit bypassrls'
where not exists (select from pg_roles where rolname = 'service_role') \gexec
select 'create role authenticator login noinherit'
where not exists (select from pg_roles where rolname = 'authenticator') \gexec

alter role service_role bypassrls;
alter role authenticator with login noinherit password :'authenticator_password';
grant anon, authenticated, service_role to authenticator;

-- Supabase's per-role statement timeouts (PostgREST applies role settings).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- Supabase installs extensions into their own schema, with pgcrypto and uuid-ossp
-- present from the start (so a migration's `create extension if not exists` is a no-op
-- there and here), and puts that schema on the search path.
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
select format('alter database %I set search_path = "$user", public, extensions', current_database())
\gexec

-- Minimal auth helpers for RLS policies: they read the claims PostgREST sets per request.
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

create or replace function auth.role() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
    )::text
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    )::uuid
$$;

grant execute on function auth.jwt(), auth.role(), auth.uid() to anon, authenticated, service_role;

-- Like Supabase: the API roles may use the public schema, and every table, sequence
-- and function the migrations create there is granted to them. Row-level security,
-- not grants, decides what anon and authenticated can see.
grant usage on schema public to postgres, anon, authenticated, service_role;
grant all on all tables in schema public to anon, authenticated, service_role;
grant all on all sequences in schema public to anon, authenticated, service_role;
grant all on all functions in schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    grant all on functions to anon, authenticated, service_role;
