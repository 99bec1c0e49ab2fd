-- older servers: keep running: new nullable columns
-- A replayed answer is logged and counted as the operation it answers (package
-- telemetry), which only the request that ran knew: its type and name ('' when it
-- had none) are kept with the answer. Both NULL for the answers stored before, and
-- for the requests refused before an operation was known.
ALTER TABLE idempotency_keys
    ADD COLUMN operation      text,
    ADD COLUMN operation_type text;
