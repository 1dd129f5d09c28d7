-- +goose Up
-- Key schemes beyond ECDSA and BIP-32 child wallets. A child wallet has no
-- key of its own: its signers derive from their shares of the parent's key
-- along derivation_path, from the chain code the key generation agreed on.
ALTER TABLE wallets ADD COLUMN parent_wallet_id TEXT REFERENCES wallets (id);
ALTER TABLE wallets ADD COLUMN derivation_path TEXT NOT NULL DEFAULT '';
ALTER TABLE wallets ADD COLUMN chain_code BLOB;
CREATE INDEX wallets_parent_seq ON wallets (parent_wallet_id, seq);
-- Message bytes signed as they are (Ed25519), and the scheme of the key
-- that signs, which says how the result is encoded.
ALTER TABLE signatures ADD COLUMN raw_message BLOB;
ALTER TABLE signatures ADD COLUMN key_scheme TEXT NOT NULL DEFAULT 'ecdsa-secp256k1';

-- +goose Down
ALTER TABLE signatures DROP COLUMN key_scheme;
ALTER TABLE signatures DROP COLUMN raw_message;
DROP INDEX wallets_parent_seq;
ALTER TABLE wallets DROP COLUMN chain_code;
ALTER TABLE wallets DROP COLUMN derivation_path;
ALTER TABLE wallets DROP COLUMN parent_wallet_id;
