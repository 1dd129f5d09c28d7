-- +goose Up
-- A signature request's application signature: the request id and the
-- requester key's name for the API, and the signed-request bytes (canonical
-- request and signature) handed to signers and HSM drivers, which verify
-- them on their own. Empty for unsigned requests.
ALTER TABLE signatures ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE signatures ADD COLUMN requester_key TEXT NOT NULL DEFAULT '';
ALTER TABLE signatures ADD COLUMN signed_request BYTEA;

-- +goose Down
ALTER TABLE signatures DROP COLUMN signed_request;
ALTER TABLE signatures DROP COLUMN requester_key;
ALTER TABLE signatures DROP COLUMN request_id;
