-- The ops console's people: users and sessions (failed logins: login_attempts.sql).
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- upsert_user: create a user or set its role and password (enabled again); created is true for a
-- new one. The owner's (`console add-user`): a new password ends the user's sessions.
INSERT INTO console_users (name, role, password_hash) VALUES (:user_name, :role, :password_hash)
ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash,
                                 updated_at = now(), password_changed_at = clock_timestamp(),
                                 disabled_at = NULL
RETURNING (xmax = 0) AS created;

-- get_user: one enabled user with its password hash (for checking a password only)
SELECT name, role, password_hash FROM console_users
WHERE name = :user_name AND disabled_at IS NULL;

-- insert_session: a new session for a user, valid for ttl seconds
INSERT INTO console_sessions (token_hash, user_name, csrf_token, expires_at)
VALUES (:token_hash, :user_name, :csrf_token, now() + make_interval(secs => :ttl::float8));

-- get_session: the live session of a token hash, with its user: enabled, and the session opened
-- after the user's last password change
SELECT u.name, u.role, s.csrf_token FROM console_sessions s
JOIN console_users u ON u.name = s.user_name
WHERE s.token_hash = :token_hash AND s.expires_at > now()
  AND u.disabled_at IS NULL AND s.created_at >= u.password_changed_at;

-- delete_session: log out
DELETE FROM console_sessions WHERE token_hash = :token_hash;

-- delete_expired_sessions: sessions past their expiry
DELETE FROM console_sessions WHERE expires_at <= now();

-- ping: the database answers (the console's /readyz)
SELECT 1;
