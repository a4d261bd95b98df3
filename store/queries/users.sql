-- Console user administration, as the owner of the tables (`console disable-user`, `remove-user`);
-- the upsert of `add-user` is console.sql's upsert_user.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- disable_user: a user can no longer log in; its sessions end. Whether the user exists.
WITH disabled AS (
    UPDATE console_users SET disabled_at = coalesce(disabled_at, clock_timestamp()),
                             updated_at = now()
    WHERE name = :user_name
    RETURNING name
), ended AS (
    DELETE FROM console_sessions s USING disabled d WHERE s.user_name = d.name
)
SELECT count(*) > 0 AS found FROM disabled;

-- remove_user: a user and its sessions gone (the audit trail keeps its name). Whether it existed.
WITH removed AS (
    DELETE FROM console_users WHERE name = :user_name RETURNING name
)
SELECT count(*) > 0 AS found FROM removed;

-- end_sessions: every session of a user (after a password change)
DELETE FROM console_sessions WHERE user_name = :user_name;
