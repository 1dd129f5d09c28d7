package backup

import (
	"context"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
)

// State is where the backup of one share is.
type State string

// Backup states.
const (
	StatePending  State = "pending"
	StateComplete State = "complete"
	StateFailing  State = "failing"
)

// row is one share's backup in the signer's database (table backups, made
// by the signer's migrations).
type row struct {
	WalletID  string `db:"wallet_id"`
	KeyID     string `db:"key_id"`
	Config    string `db:"config"`
	State     State  `db:"state"`
	Attempts  int    `db:"attempts"`
	LastError string `db:"last_error"`
	Location  string `db:"location"`
	NextAt    int64  `db:"next_at"`
	Reported  int    `db:"reported"`
	UpdatedAt int64  `db:"updated_at"`
}

const rowColumns = `wallet_id, key_id, config, state, attempts, last_error, location, next_at, reported, updated_at`

// queue is the durable list of backups to make and to report.
type queue struct{ db *db.DB }

// ensure records that the share of walletID made by keyID must be backed
// up under config. A row already there for the same key and config is left
// alone (done or in progress); a new key or config starts over.
func (q queue) ensure(ctx context.Context, walletID, keyID, config string, now time.Time) error {
	t := now.UnixMicro()
	_, err := q.db.ExecContext(ctx, q.db.Rebind(`INSERT INTO backups
		(wallet_id, key_id, config, state, attempts, last_error, location, next_at, reported, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, '', '', ?, 0, ?, ?)
		ON CONFLICT (wallet_id) DO UPDATE SET key_id = excluded.key_id, config = excluded.config, state = excluded.state,
			attempts = 0, last_error = '', next_at = excluded.next_at, reported = 0, updated_at = excluded.updated_at
		WHERE backups.key_id <> excluded.key_id OR backups.config <> excluded.config`),
		walletID, keyID, config, StatePending, t, t, t)
	return err
}

// due lists backups to attempt now.
func (q queue) due(ctx context.Context, now time.Time) ([]row, error) {
	var out []row
	err := q.db.SelectContext(ctx, &out, q.db.Rebind(`SELECT `+rowColumns+` FROM backups
		WHERE state <> ? AND next_at <= ? ORDER BY next_at, wallet_id LIMIT 100`), StateComplete, now.UnixMicro())
	return out, err
}

// nextDue is when the earliest unfinished backup is due (zero: none).
func (q queue) nextDue(ctx context.Context) (time.Time, error) {
	var next *int64
	if err := q.db.GetContext(ctx, &next, q.db.Rebind(`SELECT MIN(next_at) FROM backups WHERE state <> ?`), StateComplete); err != nil {
		return time.Time{}, err
	}
	if next == nil {
		return time.Time{}, nil
	}
	return time.UnixMicro(*next), nil
}

// finish records an attempt's outcome, unless the row was reset for new key
// material meanwhile.
func (q queue) finish(ctx context.Context, r row, now time.Time) error {
	_, err := q.db.ExecContext(ctx, q.db.Rebind(`UPDATE backups SET state = ?, attempts = ?, last_error = ?, location = ?,
		next_at = ?, reported = 0, updated_at = ? WHERE wallet_id = ? AND key_id = ? AND config = ?`),
		r.State, r.Attempts, r.LastError, r.Location, r.NextAt, now.UnixMicro(), r.WalletID, r.KeyID, r.Config)
	return err
}

// unreported lists rows whose current state the coordinator has not
// acknowledged.
func (q queue) unreported(ctx context.Context) ([]row, error) {
	var out []row
	err := q.db.SelectContext(ctx, &out, q.db.Rebind(`SELECT `+rowColumns+` FROM backups WHERE reported = 0 ORDER BY updated_at LIMIT 100`))
	return out, err
}

// markReported records that the coordinator has r's state, unless the row
// changed since it was read.
func (q queue) markReported(ctx context.Context, r row) error {
	_, err := q.db.ExecContext(ctx, q.db.Rebind(`UPDATE backups SET reported = 1 WHERE wallet_id = ? AND updated_at = ? AND state = ?`),
		r.WalletID, r.UpdatedAt, r.State)
	return err
}

// counts returns how many rows are in each state.
func (q queue) counts(ctx context.Context) (map[State]int, error) {
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	if err := q.db.SelectContext(ctx, &rows, `SELECT state, COUNT(*) AS n FROM backups GROUP BY state`); err != nil {
		return nil, err
	}
	out := map[State]int{}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}
