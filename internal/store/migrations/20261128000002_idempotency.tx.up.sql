-- older servers: keep running: a new table
-- Idempotency keys of API requests (package internal/idempotency): one row per key a
-- workspace sent, kept for at least 24 hours. While the first request with a key runs,
-- its row is a claim: owner and locked_until say who runs it and until when the claim
-- holds (a claim whose lease ran out belongs to whichever retry comes next). Once that
-- request answered definitively, the row keeps the answer to replay: status,
-- content_type and body.
CREATE TABLE idempotency_keys (
    workspace_id bigint NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    key          text NOT NULL CHECK (key <> '' AND octet_length(key) <= 255),
    -- SHA-256 of the request body: the same key with another request is refused.
    request_hash bytea NOT NULL,
    -- While in progress: the running request's random token, and the end of its lease.
    owner        bytea,
    locked_until timestamptz,
    -- Once done: the stored response.
    status       int,
    content_type text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key),
    CHECK ((status IS NULL) = (owner IS NOT NULL AND locked_until IS NOT NULL)),
    CHECK ((status IS NULL) = (body IS NULL))
);
-- The expiry sweep deletes the oldest keys of all workspaces.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
