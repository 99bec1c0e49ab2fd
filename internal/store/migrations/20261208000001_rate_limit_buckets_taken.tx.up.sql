-- older servers: keep running: a new column with a default
-- What the last granted charge of a bucket took from its row: the request's cost
-- (less what the instance's reserve paid) and the chunk the instance keeps as its
-- reserve (store.RateLimiter). The statement that charges returns it, since RETURNING
-- sees only the new row and the chunk depends on the balance before it. A constant
-- default: no rewrite of the table, and a server of the previous release, which does
-- not name the column, still charges.
ALTER TABLE rate_limit_buckets ADD COLUMN taken double precision NOT NULL DEFAULT 0;
