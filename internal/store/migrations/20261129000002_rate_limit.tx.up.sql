-- older servers: keep running: a new table
-- Token buckets of the cost-based rate limiter (store.RateLimiter): one row per bucket
-- (an API key, or a dashboard user, of a workspace), so that a busy bucket only ever
-- locks its own row. A bucket holds `tokens` as of `updated_at`; it refills with time
-- and the statement that charges a request computes the refill, so nothing sweeps.
-- A missing row is a full bucket. Rows are small (one per key and per user that
-- called) and go with their workspace.
--
-- UNLOGGED: the rows change on every request and are worth nothing after a crash (the
-- buckets then start full again), so they skip the WAL. fillfactor leaves room on each
-- page for the updates to be HOT (no index change: only non-key columns change).
CREATE UNLOGGED TABLE rate_limit_buckets (
    workspace_id bigint NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    bucket       text NOT NULL CHECK (bucket <> '' AND octet_length(bucket) <= 300),
    tokens       double precision NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- Whether the last charge was granted: the statement that charges returns it,
    -- since RETURNING sees only the new row.
    granted      boolean NOT NULL,
    PRIMARY KEY (workspace_id, bucket)
) WITH (fillfactor = 70);
