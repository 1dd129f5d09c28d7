-- +goose Up
-- The backup state of each share of a wallet, as its signer last reported
-- it (CeremonyService.ReportBackup); the wallet API sums them per wallet.
CREATE TABLE backup_reports (
    wallet_id  TEXT NOT NULL REFERENCES wallets (id),
    signer     TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    location   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, signer)
);

-- +goose Down
DROP TABLE backup_reports;
