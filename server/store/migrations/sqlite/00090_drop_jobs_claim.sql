-- +goose Up
-- Claims walk jobs_open (the open jobs, by seq) and the queue depth gauge
-- counts through it too; jobs_claim served no query any more, yet every
-- change of a job's state (queued, leased, done: twice per job) had to
-- update it.
DROP INDEX jobs_claim;

-- +goose Down
CREATE INDEX jobs_claim ON jobs (state, available_at, seq);
