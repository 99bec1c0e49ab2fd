-- older servers: keep running: a new nullable column
-- A replayed answer is charged to the rate limit as the request it repeats was
-- (package idempotency): the points that request was charged (its
-- extensions.cost.actualQueryCost, 0 when it was refused before it was costed) are
-- kept with the answer, not read back from its body. NULL for the answers stored
-- before, which are replayed for 1 point. A nullable column without a default: the
-- ALTER changes the catalog only, whatever the table holds, and holds its lock for
-- as long.
ALTER TABLE idempotency_keys ADD COLUMN cost int;
