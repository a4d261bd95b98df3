-- The audit trail of operator actions: appended to, never rewritten (a trigger refuses).
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- record_audit: one operator action
INSERT INTO audit_log (actor, action, count, details)
VALUES (:actor, :action, :count, :details::jsonb)
RETURNING id, at;

-- list_audit: operator actions since a time, oldest first
SELECT id, at, actor, action, count, details FROM audit_log
WHERE (:since::timestamptz IS NULL OR at >= :since)
ORDER BY id;

-- page_audit: newest first, a page before the cursor id (0: from the newest), by actor/action
SELECT id, at, actor, action, count, details FROM audit_log
WHERE (:before_id::bigint = 0 OR id < :before_id)
  AND (:actor::text IS NULL OR actor = :actor)
  AND (:action::text IS NULL OR action = :action)
ORDER BY id DESC LIMIT :limit;
