-- +goose Up
-- The durable queue of share backups (signer/backup): one row per wallet
-- whose active share must be, or has been, encrypted to the operator's
-- recovery recipients and stored in the backup target. A row is written
-- when a share becomes active (and checked for every active share at
-- start), so a restart before the upload loses nothing. key_id is the
-- ceremony that made the share; config fingerprints recipients and target,
-- so a change of either backs the share up again. reported is 1 once the
-- coordinator has acknowledged the current state.
CREATE TABLE backups (
    wallet_id  TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    config     TEXT NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    location   TEXT NOT NULL,
    next_at    INTEGER NOT NULL,
    reported   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE backups;
