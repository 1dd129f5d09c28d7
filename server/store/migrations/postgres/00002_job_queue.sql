-- +goose Up
-- The claim query walks the open jobs (queued, or leased with a lease that
-- may have lapsed) oldest first. Done and failed jobs pile up for ever, so
-- a partial index over the open ones keeps a claim cheap however long the
-- history grows.
CREATE INDEX jobs_open ON jobs (seq) WHERE state IN ('queued', 'leased');

-- +goose Down
DROP INDEX jobs_open;
