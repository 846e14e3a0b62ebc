-- Call analytics (GET /stats): the ended sessions, counted per 15-minute UTC slot of their start
-- and per (status, ended_reason, language), with the whole-second durations of those calls as a
-- JSON object (seconds -> calls). The writer keeps it in the same transaction as the session: an
-- end adds its call, an erasure of an ended call takes it out. Open sessions are not in it (they
-- are few and are read from `sessions`), nor are erased ones.
CREATE TABLE session_stats (
    slot         INTEGER NOT NULL,            -- started_at / 900000
    status       TEXT    NOT NULL CHECK (status = 'completed' OR status = 'failed'),
    ended_reason TEXT    NOT NULL,            -- '' for none
    language     TEXT    NOT NULL,
    calls        INTEGER NOT NULL CHECK (calls >= 0),
    events       INTEGER NOT NULL CHECK (events >= 0),
    durations    TEXT    NOT NULL,            -- {"<seconds>": calls, ...}
    PRIMARY KEY (slot, status, ended_reason, language)
) WITHOUT ROWID;

-- The sessions that ended before this migration.
INSERT INTO session_stats (slot, status, ended_reason, language, calls, events, durations)
SELECT slot, status, reason, language, sum(calls), sum(events), json_group_object(seconds, calls)
FROM (
    SELECT started_at / 900000 AS slot, status, coalesce(ended_reason, '') AS reason, language,
           max(ended_at - started_at, 0) / 1000 AS seconds, count(*) AS calls,
           sum(event_count) AS events
    FROM sessions
    WHERE status = 'completed' OR status = 'failed'
    GROUP BY 1, 2, 3, 4, 5
)
GROUP BY 1, 2, 3, 4;
