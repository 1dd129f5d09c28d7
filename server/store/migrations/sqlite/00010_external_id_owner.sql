-- +goose Up
-- External ids belong to whoever made them: the API token, or the token's
-- tenant when it has one. The owner is kept with each wallet and signature,
-- and the external_id column stores "<owner>/<external id>" so that its
-- UNIQUE constraint holds per owner (external ids and owners never contain
-- "/"). Rows made before this migration keep owner '' and their bare
-- external id: no caller owns them, so their external ids are not replayed.
ALTER TABLE wallets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE signatures ADD COLUMN owner TEXT NOT NULL DEFAULT '';
-- A tenant groups tokens that share external ids (a rotated token keeps
-- its predecessor's); empty means the token is its own owner.
ALTER TABLE api_tokens ADD COLUMN tenant TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN tenant;
ALTER TABLE signatures DROP COLUMN owner;
ALTER TABLE wallets DROP COLUMN owner;
