-- +goose Up
-- Key material is versioned: a wallet's key may be replaced (a refresh, a
-- new scheme), each version a key epoch with its scheme recorded. Shares
-- made before this migration are epoch 1 of ECDSA over secp256k1.
ALTER TABLE shares ADD COLUMN key_epoch INTEGER NOT NULL DEFAULT 1;
ALTER TABLE shares ADD COLUMN scheme TEXT NOT NULL DEFAULT 'ecdsa-secp256k1';
ALTER TABLE shares ALTER COLUMN key_epoch DROP DEFAULT;
ALTER TABLE shares ALTER COLUMN scheme DROP DEFAULT;
ALTER TABLE shares DROP CONSTRAINT shares_pkey;
ALTER TABLE shares ADD PRIMARY KEY (wallet_id, key_epoch);
CREATE INDEX shares_keygen ON shares (keygen_ceremony_id);

-- +goose Down
DROP INDEX shares_keygen;
DELETE FROM shares WHERE key_epoch <> 1;
ALTER TABLE shares DROP CONSTRAINT shares_pkey;
ALTER TABLE shares ADD PRIMARY KEY (wallet_id);
ALTER TABLE shares DROP COLUMN scheme;
ALTER TABLE shares DROP COLUMN key_epoch;
