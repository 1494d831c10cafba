-- Bilingual calls: a call's language and its switches, and each message's language.
--
-- conversations.language is the language the call ended in; conversations.metadata carries
-- where the call's first language came from (`language_source`: {language, cause}, cause one of
-- default, dispatch, customer) and every later change (`language_switches`: [{language, cause,
-- turn, previous, seq}], cause one of customer, speech, request). Each message's metadata
-- carries the language it was said in (`language`). Both stores keep the same shape.
-- RLS is unchanged: these are indexes on tables that already have it.

create index if not exists conversations_language_idx
    on public.conversations (language, started_at desc);

create index if not exists messages_language_idx
    on public.messages ((metadata ->> 'language'), conversation_id);

comment on column public.conversations.language is
    'The language the call ended in (en, ar); metadata.language_source and metadata.language_switches say how it got there.';
