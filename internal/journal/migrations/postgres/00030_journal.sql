-- +goose Up
-- The decision journal of a signer or HSM driver: one append-only record
-- per decision on a signature request, each holding the hash of the one
-- before it (prev_hash) and its own hash over its fields and prev_hash, so
-- that changing or removing any record breaks the chain from there on.
CREATE TABLE journal (
    seq           BIGINT PRIMARY KEY,
    at            BIGINT NOT NULL,
    node          TEXT NOT NULL,
    decision      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    work_id       TEXT NOT NULL,
    signature_id  TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    wallet_id     TEXT NOT NULL,
    digest        TEXT NOT NULL,
    requester_key TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
-- Replay checks look up a wallet's signed request ids.
CREATE INDEX journal_wallet_request ON journal (wallet_id, request_id);

-- +goose Down
DROP TABLE journal;
