package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// BackupState is where the backup of one share is, as its signer reports it.
type BackupState string

// Backup states.
const (
	BackupPending  BackupState = "pending"
	BackupComplete BackupState = "complete"
	BackupFailing  BackupState = "failing"
)

// BackupReport is a signer's latest word on the backup of its share of a
// wallet.
type BackupReport struct {
	WalletID  string
	Signer    string
	State     BackupState
	Reason    string
	Location  string
	UpdatedAt time.Time
}

// Backups stores the backup reports of signers.
type Backups interface {
	// PutBackupReport records r, replacing the signer's previous report for
	// the wallet. The wallet must exist (ErrNotFound).
	PutBackupReport(ctx context.Context, r *BackupReport) error
	// BackupWallet returns the wallet a backup report is about, whatever
	// its status: a pooled key's shares are backed up before the key is
	// assigned to a wallet the API shows. ErrNotFound when there is none.
	BackupWallet(ctx context.Context, id string) (*Wallet, error)
	// BackupReports returns the reports of the given wallets, keyed by
	// wallet id, each wallet's sorted by signer.
	BackupReports(ctx context.Context, walletIDs []string) (map[string][]*BackupReport, error)
}

type backupRow struct {
	WalletID  string `db:"wallet_id"`
	Signer    string `db:"signer"`
	State     string `db:"state"`
	Reason    string `db:"reason"`
	Location  string `db:"location"`
	UpdatedAt int64  `db:"updated_at"`
}

// PutBackupReport implements Backups.
func (s *SQL) PutBackupReport(ctx context.Context, r *BackupReport) error {
	if _, err := s.BackupWallet(ctx, r.WalletID); err != nil {
		return err
	}
	at := r.UpdatedAt
	if at.IsZero() {
		at = s.now()
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO backup_reports (wallet_id, signer, state, reason, location, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (wallet_id, signer) DO UPDATE SET state = excluded.state, reason = excluded.reason,
			location = excluded.location, updated_at = excluded.updated_at`),
		r.WalletID, r.Signer, string(r.State), r.Reason, r.Location, micros(at))
	if err != nil {
		return fmt.Errorf("store backup report: %w", err)
	}
	return nil
}

// BackupWallet implements Backups.
func (s *SQL) BackupWallet(ctx context.Context, id string) (*Wallet, error) {
	var r walletRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+walletColumns+` FROM wallets WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: wallet %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("select wallet: %w", err)
	}
	return r.wallet(), nil
}

// BackupReports implements Backups.
func (s *SQL) BackupReports(ctx context.Context, walletIDs []string) (map[string][]*BackupReport, error) {
	out := map[string][]*BackupReport{}
	if len(walletIDs) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT wallet_id, signer, state, reason, location, updated_at FROM backup_reports
		WHERE wallet_id IN (?) ORDER BY wallet_id, signer`, walletIDs)
	if err != nil {
		return nil, err
	}
	var rows []backupRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("select backup reports: %w", err)
	}
	for _, r := range rows {
		out[r.WalletID] = append(out[r.WalletID], &BackupReport{WalletID: r.WalletID, Signer: r.Signer, State: BackupState(r.State),
			Reason: r.Reason, Location: r.Location, UpdatedAt: fromMicros(r.UpdatedAt)})
	}
	return out, nil
}
