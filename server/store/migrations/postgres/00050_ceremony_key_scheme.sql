-- +goose Up
-- A ceremony's protocol is chosen by its kind and its wallet's key scheme.
-- Every ceremony before this one was ECDSA over secp256k1.
ALTER TABLE ceremonies ADD COLUMN key_scheme TEXT NOT NULL DEFAULT 'ecdsa-secp256k1';

-- +goose Down
ALTER TABLE ceremonies DROP COLUMN key_scheme;
