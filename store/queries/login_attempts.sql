-- The console's failed-login limit (console/users.py): an attempt is recorded as a failure before
-- its password is checked, and a right password forgives it, so parallel guesses each count.
-- Each query: "-- name: description", then the statement; parameters are named (:name).

-- insert_login_attempt: one login attempt under way, by user name and client address (a failure until forgiven)
INSERT INTO console_login_failures (user_name, remote) VALUES (:user_name, :remote);

-- count_login_attempts: recent failures from this address, for this user name and for any name
SELECT count(*) FILTER (WHERE user_name = :user_name) AS by_user,
       count(*) AS by_remote
FROM console_login_failures
WHERE remote = :remote AND at > now() - make_interval(secs => :window::float8);

-- forgive_login_attempts: a right password forgives this name's failures from this address only (another address's may be someone guessing)
DELETE FROM console_login_failures WHERE user_name = :user_name AND remote = :remote;

-- prune_login_attempts: failures older than any rate-limit window
DELETE FROM console_login_failures WHERE at < now() - interval '1 day';
