-- +goose Up
-- When the current lease was first granted (Unix microseconds; 0 when not
-- leased). Renewals never extend a lease beyond leased_at plus the queue's
-- maximum lease lifetime, so a driver cannot hold a job for ever.
ALTER TABLE jobs ADD COLUMN leased_at INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN leased_at;
