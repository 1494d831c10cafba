-- Trigger functions are not an API: only the table owner's triggers call them.
revoke all on function public.set_updated_at() from public, anon, authenticated;
