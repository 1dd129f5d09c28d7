-- +goose Up
-- Several coordinator replicas share MPC: a replica owns a running
-- ceremony through a lease (owner, epoch, expiry) it renews while it drives
-- it. Another replica takes over an expired lease by raising the epoch;
-- every write of an outcome checks the epoch, so a replica that lost its
-- lease cannot act on it.
ALTER TABLE ceremonies ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE ceremonies ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ceremonies ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
-- Which replica each signer's ceremony stream is connected to, with the
-- announcement it sent and a heartbeat its replica refreshes.
CREATE TABLE signer_presence (
    signer        TEXT PRIMARY KEY,
    replica       TEXT NOT NULL,
    stream        INTEGER NOT NULL,            -- the replica's stream number
    announcement  BLOB NOT NULL,
    connected_at  INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    left_at       INTEGER NOT NULL DEFAULT 0   -- 0 while connected
);

-- +goose Down
DROP TABLE signer_presence;
ALTER TABLE ceremonies DROP COLUMN lease_until;
ALTER TABLE ceremonies DROP COLUMN lease_epoch;
ALTER TABLE ceremonies DROP COLUMN lease_owner;
