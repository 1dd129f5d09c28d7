-- +goose Up
-- Presignature pools: CMP presignatures made ahead by a quorum of a
-- wallet's signers, each used for at most one signature. The signers hold
-- the secret parts; the coordinator only knows which quorum holds which id.
CREATE TABLE presignatures (
    id          TEXT PRIMARY KEY,          -- the presigning ceremony's id
    wallet_id   TEXT NOT NULL REFERENCES wallets (id),
    public_key  BYTEA NOT NULL,             -- the wallet key it was made for
    signers     TEXT NOT NULL,             -- the quorum, sorted, comma-separated
    state       TEXT NOT NULL,             -- ready, used, dropped
    used_by     TEXT NOT NULL DEFAULT '',  -- the signing ceremony that took it
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX presignatures_ready ON presignatures (wallet_id, state, created_at);
-- The presignature a signing ceremony runs its online round with, if any.
ALTER TABLE ceremonies ADD COLUMN presignature_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE ceremonies DROP COLUMN presignature_id;
DROP TABLE presignatures;
