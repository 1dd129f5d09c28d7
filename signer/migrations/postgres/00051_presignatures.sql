-- +goose Up
-- This signer's parts of CMP presignatures, each sealed under the KEK
-- (bound to wallet, presignature and signer) and used for at most one
-- signature: 'ready' until a signing ceremony takes it, then 'used' for
-- good, marked durably before this signer releases its online share. Used
-- rows stay as tombstones, so a presignature id is never accepted twice.
CREATE TABLE presignatures (
    id          TEXT PRIMARY KEY,      -- the presigning ceremony's id
    wallet_id   TEXT NOT NULL,
    key_epoch   INTEGER NOT NULL,
    signers     TEXT NOT NULL,         -- the quorum, sorted, comma-separated
    state       TEXT NOT NULL,
    used_by     TEXT NOT NULL DEFAULT '',
    sealed      BYTEA,                  -- NULL once used
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX presignatures_wallet ON presignatures (wallet_id, state);

-- +goose Down
DROP TABLE presignatures;
