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
