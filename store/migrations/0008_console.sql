-- The ops console: its users, their sessions, failed logins (for the rate limit). Its actions go
-- to the one audit trail, audit_log (0004), with the actor console:<name>.

CREATE TABLE console_users (
    name           text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash  text NOT NULL,                 -- scrypt$n$r$p$salt$hash, never the password
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The cookie holds a random token; only its SHA-256 is stored, so a read of this table opens
-- no session.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY,
    user_name   text NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE console_login_failures (
    id         bigserial PRIMARY KEY,
    user_name  text NOT NULL,
    remote     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_failures_user_idx ON console_login_failures (user_name, at);
CREATE INDEX console_login_failures_remote_idx ON console_login_failures (remote, at);

-- The console's searches: by customer (through orders) and by time received (by order: 0005).
CREATE INDEX orders_customer_key_idx ON orders (customer_key);
CREATE INDEX events_applied_at_idx ON events (applied_at);
