ALTER TABLE idempotency_keys
    DROP COLUMN operation,
    DROP COLUMN operation_type;
