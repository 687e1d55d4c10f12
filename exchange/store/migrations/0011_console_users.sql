-- Migrations are applied in order, each once, in one transaction, and recorded in
-- schema_migrations (exchange/store/database.py). Statements stay safe to run again.

-- People who sign in to the web console (/console): operators, clerks of one agency, auditors.
-- Passwords are kept as Argon2id PHC strings only; failed sign-ins lock the user for a while.
CREATE TABLE IF NOT EXISTS console_users (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('operator', 'clerk', 'auditor')),
    agency        text REFERENCES agencies (code),
    password_hash text NOT NULL,
    failures      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    -- sessions issued before this are void (signed out, new password): cookies are stateless
    sessions_valid_after timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'clerk') = (agency IS NOT NULL))
);
