-- Everyday operator queries; each runs unchanged in the Supabase SQL editor.

-- The 10 most recent calls
SELECT * FROM conversations ORDER BY started_at DESC LIMIT 10;

-- Calls in progress right now (or whose worker died before the end: see status 'abandoned')
SELECT * FROM conversations WHERE status = 'active';

-- Every call from one phone number
SELECT * FROM conversations WHERE user_phone = '+963991234567' ORDER BY started_at DESC;

-- Today's calls
SELECT * FROM conversations WHERE DATE(started_at) = CURRENT_DATE ORDER BY started_at DESC;

-- Counts, average duration and average message count by status
SELECT status, COUNT(*), AVG(duration_seconds), AVG(message_count) FROM conversations GROUP BY status;

-- One call's transcript, in order
SELECT seq, role, interrupted, content, created_at
FROM messages WHERE conversation_id = 'REPLACE-WITH-CONVERSATION-ID' ORDER BY seq;

-- One call's tool calls, in order
SELECT seq, name, arguments, is_error, output, duration_ms
FROM tool_calls WHERE conversation_id = 'REPLACE-WITH-CONVERSATION-ID' ORDER BY seq;

-- Calls by language (the language each call ended in), how many switched mid-call, the
-- switches by cause (speech, request, customer), and where calls started (dispatch, customer, default)
SELECT c.language,
       COUNT(*) AS calls,
       COUNT(*) FILTER (WHERE jsonb_array_length(COALESCE(c.metadata -> 'language_switches', '[]'::jsonb)) > 0)
           AS calls_with_switches,
       COALESCE(SUM(jsonb_array_length(COALESCE(c.metadata -> 'language_switches', '[]'::jsonb))), 0) AS switches,
       COALESCE(SUM((SELECT COUNT(*) FROM jsonb_array_elements(c.metadata -> 'language_switches') s
                     WHERE s ->> 'cause' = 'speech')), 0) AS by_speech,
       COALESCE(SUM((SELECT COUNT(*) FROM jsonb_array_elements(c.metadata -> 'language_switches') s
                     WHERE s ->> 'cause' = 'request')), 0) AS by_request,
       COALESCE(SUM((SELECT COUNT(*) FROM jsonb_array_elements(c.metadata -> 'language_switches') s
                     WHERE s ->> 'cause' = 'customer')), 0) AS by_customer,
       COUNT(*) FILTER (WHERE c.metadata -> 'language_source' ->> 'cause' = 'dispatch') AS started_by_dispatch,
       COUNT(*) FILTER (WHERE c.metadata -> 'language_source' ->> 'cause' = 'customer') AS started_by_customer,
       COUNT(*) FILTER (WHERE c.metadata -> 'language_source' ->> 'cause' = 'default') AS started_by_default
FROM conversations c
GROUP BY c.language
ORDER BY calls DESC;

