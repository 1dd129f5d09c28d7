-- +goose Up
-- Wallet keys as the HSM wrapped them (CKM_AES_KEY_WRAP_PAD under the master
-- key). Nothing here is a key in clear: without an HSM holding the master
-- key the blobs are useless. Timestamps are Unix microseconds.
CREATE TABLE wrapped_keys (
    wallet_id              TEXT PRIMARY KEY,
    public_key             BLOB NOT NULL,
    wrapped                BLOB NOT NULL,
    master_key_fingerprint TEXT NOT NULL,
    created_at             INTEGER NOT NULL
);

-- +goose Down
DROP TABLE wrapped_keys;
