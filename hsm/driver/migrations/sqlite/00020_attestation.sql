-- +goose Up
-- The HSM's attestation of each key (see internal/attest), made when the key
-- was generated and kept with it, so that a driver reusing a stored key
-- reports the attestation of the HSM that made it rather than vouching for
-- whatever the database holds. Empty for keys stored before attestation.
ALTER TABLE wrapped_keys ADD COLUMN attestation_key_id BLOB;
ALTER TABLE wrapped_keys ADD COLUMN attestation BLOB;

-- +goose Down
ALTER TABLE wrapped_keys DROP COLUMN attestation;
ALTER TABLE wrapped_keys DROP COLUMN attestation_key_id;
