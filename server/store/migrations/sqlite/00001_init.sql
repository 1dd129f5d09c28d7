-- +goose Up
-- Timestamps are Unix microseconds (UTC) in both dialects, so the stores
-- share one code path. Lists of signer names are comma-separated: names are
-- validated to [a-z0-9-_.] and never contain commas.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    hash        BLOB NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE wallets (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    external_id    TEXT UNIQUE,
    request_hash   BLOB NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    backend        TEXT NOT NULL,
    key_scheme     TEXT NOT NULL,
    status         TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    public_key     BLOB,
    mpc_threshold  INTEGER NOT NULL DEFAULT 0,
    mpc_signers    TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX wallets_status_seq ON wallets (status, seq);

CREATE TABLE signatures (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    external_id    TEXT UNIQUE,
    request_hash   BLOB NOT NULL,
    wallet_id      TEXT NOT NULL REFERENCES wallets (id),
    kind           TEXT NOT NULL,
    hash           BLOB,
    message        TEXT NOT NULL DEFAULT '',
    digest         BLOB NOT NULL,
    status         TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    sig_r          BLOB,
    sig_s          BLOB,
    recovery_id    INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX signatures_wallet_seq ON signatures (wallet_id, seq);

-- MPC ceremonies: key generations and signatures run by signer groups.
CREATE TABLE ceremonies (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    wallet_id      TEXT NOT NULL REFERENCES wallets (id),
    signature_id   TEXT REFERENCES signatures (id),
    state          TEXT NOT NULL,
    threshold      INTEGER NOT NULL,
    group_signers  TEXT NOT NULL,
    parties        TEXT NOT NULL DEFAULT '',
    excluded       TEXT NOT NULL DEFAULT '',
    attempt        INTEGER NOT NULL DEFAULT 0,
    deadline       INTEGER NOT NULL DEFAULT 0,
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX ceremonies_state ON ceremonies (state, seq);

-- What each signer reported for a ceremony.
CREATE TABLE ceremony_reports (
    ceremony_id TEXT NOT NULL REFERENCES ceremonies (id),
    signer      TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    output      BLOB,
    reason      TEXT NOT NULL DEFAULT '',
    rejected    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (ceremony_id, signer)
);

-- The relay's mailbox: sealed envelopes, deleted when their ceremony ends.
CREATE TABLE relay_messages (
    pos         INTEGER PRIMARY KEY AUTOINCREMENT,
    ceremony_id TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX relay_messages_mailbox ON relay_messages (ceremony_id, recipient, pos);

-- HSM jobs, leased to one driver at a time.
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    wallet_id        TEXT NOT NULL REFERENCES wallets (id),
    signature_id     TEXT REFERENCES signatures (id),
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_id         TEXT NOT NULL DEFAULT '',
    leased_by        TEXT NOT NULL DEFAULT '',
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    available_at     INTEGER NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, available_at, seq);

-- +goose Down
DROP TABLE jobs;
DROP TABLE relay_messages;
DROP TABLE ceremony_reports;
DROP TABLE ceremonies;
DROP TABLE signatures;
DROP TABLE wallets;
DROP TABLE api_tokens;
