-- +goose Up
-- Each row is this signer's share of one wallet's key, sealed under the
-- signer's KEK (AES-256-GCM envelope bound to wallet id and signer name).
-- A share is 'pending' from the moment it is durable until its key
-- generation is known to have succeeded; pending shares never sign.
CREATE TABLE shares (
    wallet_id          TEXT PRIMARY KEY,
    keygen_ceremony_id TEXT NOT NULL,
    state              TEXT NOT NULL,
    public_key         BLOB NOT NULL,
    sealed             BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- +goose Down
DROP TABLE shares;
