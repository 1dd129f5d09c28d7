package signer

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
)

//go:embed migrations
var migrations embed.FS

// Share states.
const (
	sharePending = "pending"
	shareActive  = "active"
)

// ErrNoShare reports that this signer holds no share of the wallet.
var ErrNoShare = errors.New("no share for this wallet")

// errShareExists reports that the wallet already has a share of this
// signer for the key epoch.
var errShareExists = errors.New("a share for this wallet and key epoch already exists")

// share is one stored, sealed key share: this signer's part of one key
// epoch of a wallet.
type share struct {
	WalletID         string `db:"wallet_id"`
	KeyEpoch         int    `db:"key_epoch"`
	Scheme           string `db:"scheme"`
	KeygenCeremonyID string `db:"keygen_ceremony_id"`
	State            string `db:"state"`
	PublicKey        []byte `db:"public_key"`
	Sealed           []byte `db:"sealed"`
	CreatedAt        int64  `db:"created_at"`
	UpdatedAt        int64  `db:"updated_at"`
}

// firstEpoch is the key epoch a wallet's key generation makes.
const firstEpoch = 1

// sealBinding is what a share's KEK envelope is bound to besides the
// signer: the wallet, and the key epoch after the first (epoch 1 keeps the
// binding shares had before epochs, so they still open).
func sealBinding(walletID string, epoch int) string {
	if epoch == firstEpoch {
		return walletID
	}
	return fmt.Sprintf("%s#%d", walletID, epoch)
}

const shareColumns = `wallet_id, key_epoch, scheme, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at`

// shareStore keeps a signer's sealed shares.
type shareStore struct{ db *db.DB }

// MigrationTable is the goose version table of the signer's schema.
const MigrationTable = "goose_signer"

// Migrations returns the signer database's schema migrations, one folder
// per dialect.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

func openShares(ctx context.Context, d *db.DB) (*shareStore, error) {
	if err := d.Migrate(ctx, Migrations(), MigrationTable); err != nil {
		return nil, fmt.Errorf("migrate signer database: %w", err)
	}
	return &shareStore{db: d}, nil
}

// putPending stores a new share durably (the database commits before this
// returns) in state pending. A wallet has at most one share per signer and
// epoch: a second key generation for the same epoch is refused.
func (s *shareStore) putPending(ctx context.Context, sh *share) error {
	now := time.Now().UnixMicro()
	sh.State, sh.CreatedAt, sh.UpdatedAt = sharePending, now, now
	_, err := s.db.NamedExecContext(ctx, `INSERT INTO shares (`+shareColumns+`) VALUES
		(:wallet_id, :key_epoch, :scheme, :keygen_ceremony_id, :state, :public_key, :sealed, :created_at, :updated_at)`, sh)
	if err != nil {
		if db.IsUniqueViolation(err) {
			return fmt.Errorf("%w (wallet %s, epoch %d)", errShareExists, sh.WalletID, sh.KeyEpoch)
		}
		return fmt.Errorf("store share: %w", err)
	}
	return nil
}

// get returns the share of the wallet's latest active key epoch, or, with
// none active, its latest pending one.
func (s *shareStore) get(ctx context.Context, walletID string) (*share, error) {
	var sh share
	err := s.db.GetContext(ctx, &sh, s.db.Rebind(`SELECT `+shareColumns+`
		FROM shares WHERE wallet_id = ? ORDER BY CASE WHEN state = ? THEN 1 ELSE 0 END DESC, key_epoch DESC LIMIT 1`),
		walletID, shareActive)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoShare
	}
	if err != nil {
		return nil, fmt.Errorf("load share: %w", err)
	}
	return &sh, nil
}

// byCeremony returns the pending share a key generation left, if any.
func (s *shareStore) byCeremony(ctx context.Context, ceremonyID string) (*share, error) {
	var sh share
	err := s.db.GetContext(ctx, &sh, s.db.Rebind(`SELECT `+shareColumns+`
		FROM shares WHERE keygen_ceremony_id = ? AND state = ?`), ceremonyID, sharePending)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoShare
	}
	if err != nil {
		return nil, fmt.Errorf("load share: %w", err)
	}
	return &sh, nil
}

// ofEpoch returns the wallet's share for the key epoch, in any state.
func (s *shareStore) ofEpoch(ctx context.Context, walletID string, epoch int) (*share, error) {
	var sh share
	err := s.db.GetContext(ctx, &sh, s.db.Rebind(`SELECT `+shareColumns+`
		FROM shares WHERE wallet_id = ? AND key_epoch = ?`), walletID, epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoShare
	}
	if err != nil {
		return nil, fmt.Errorf("load share: %w", err)
	}
	return &sh, nil
}

// activate marks the share of a key generation that succeeded usable. It
// reports whether this call activated it.
func (s *shareStore) activate(ctx context.Context, sh *share) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE shares SET state = ?, updated_at = ?
		WHERE wallet_id = ? AND key_epoch = ? AND keygen_ceremony_id = ? AND state = ?`),
		shareActive, time.Now().UnixMicro(), sh.WalletID, sh.KeyEpoch, sh.KeygenCeremonyID, sharePending)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// discard deletes the share of a key generation that failed: a share of a
// failed key must never be used.
func (s *shareStore) discard(ctx context.Context, sh *share) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM shares WHERE wallet_id = ? AND key_epoch = ? AND keygen_ceremony_id = ? AND state = ?`),
		sh.WalletID, sh.KeyEpoch, sh.KeygenCeremonyID, sharePending)
	return err
}

// pending lists shares whose key generation outcome is not known yet.
func (s *shareStore) pending(ctx context.Context) ([]*share, error) {
	var out []*share
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT `+shareColumns+` FROM shares WHERE state = ?`), sharePending)
	return out, err
}

// active lists the shares that may sign.
func (s *shareStore) active(ctx context.Context) ([]*share, error) {
	var out []*share
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT `+shareColumns+` FROM shares WHERE state = ?`), shareActive)
	return out, err
}
