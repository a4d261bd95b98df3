-- The audit trail: every operator action, by whom, on what, why. Append-only.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- insert_audit: record one action
INSERT INTO audit_log (actor, action, target, reason, details)
VALUES (:actor, :action, :target, :reason, :details::jsonb)
RETURNING id;

-- list_audit: newest first, a page before the cursor id (0: from the newest)
SELECT id, at, actor, action, target, reason, details FROM audit_log
WHERE (:before_id::bigint = 0 OR id < :before_id)
  AND (:actor::text IS NULL OR actor = :actor)
  AND (:action::text IS NULL OR action = :action)
ORDER BY id DESC LIMIT :limit;
