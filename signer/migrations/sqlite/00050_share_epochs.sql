-- +goose Up
-- Key material is versioned: a wallet's key may be replaced (a refresh, a
-- new scheme), each version a key epoch with its scheme recorded. Shares
-- made before this migration are epoch 1 of ECDSA over secp256k1.
CREATE TABLE shares_epochs (
    wallet_id          TEXT NOT NULL,
    key_epoch          INTEGER NOT NULL,
    scheme             TEXT NOT NULL,
    keygen_ceremony_id TEXT NOT NULL,
    state              TEXT NOT NULL,
    public_key         BLOB NOT NULL,
    sealed             BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, key_epoch)
);
INSERT INTO shares_epochs (wallet_id, key_epoch, scheme, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at)
    SELECT wallet_id, 1, 'ecdsa-secp256k1', keygen_ceremony_id, state, public_key, sealed, created_at, updated_at FROM shares;
DROP TABLE shares;
ALTER TABLE shares_epochs RENAME TO shares;
CREATE INDEX shares_keygen ON shares (keygen_ceremony_id);

-- +goose Down
CREATE TABLE shares_single (
    wallet_id          TEXT PRIMARY KEY,
    keygen_ceremony_id TEXT NOT NULL,
    state              TEXT NOT NULL,
    public_key         BLOB NOT NULL,
    sealed             BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
INSERT INTO shares_single SELECT wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at
    FROM shares WHERE key_epoch = 1;
DROP TABLE shares;
ALTER TABLE shares_single RENAME TO shares;
