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

// share is one stored, sealed key share.
type share struct {
	WalletID         string `db:"wallet_id"`
	KeygenCeremonyID string `db:"keygen_ceremony_id"`
	State            string `db:"state"`
	PublicKey        []byte `db:"public_key"`
	Sealed           []byte `db:"sealed"`
	CreatedAt        int64  `db:"created_at"`
	UpdatedAt        int64  `db:"updated_at"`
}

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
// returns) in state pending. A wallet has at most one share per signer: a
// second key generation for the same wallet is refused.
func (s *shareStore) putPending(ctx context.Context, walletID, ceremonyID string, pub, sealed []byte) error {
	now := time.Now().UnixMicro()
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO shares
		(wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		walletID, ceremonyID, sharePending, pub, sealed, now, now)
	if err != nil {
		if db.IsUniqueViolation(err) {
			return fmt.Errorf("a share for wallet %s already exists", walletID)
		}
		return fmt.Errorf("store share: %w", err)
	}
	return nil
}

func (s *shareStore) get(ctx context.Context, walletID string) (*share, error) {
	var sh share
	err := s.db.GetContext(ctx, &sh, s.db.Rebind(`SELECT wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at
		FROM shares WHERE wallet_id = ?`), walletID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoShare
	}
	if err != nil {
		return nil, fmt.Errorf("load share: %w", err)
	}
	return &sh, nil
}

// activate marks the share of a key generation that succeeded usable.
func (s *shareStore) activate(ctx context.Context, walletID, ceremonyID string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE shares SET state = ?, updated_at = ? WHERE wallet_id = ? AND keygen_ceremony_id = ?`),
		shareActive, time.Now().UnixMicro(), walletID, ceremonyID)
	return err
}

// discard deletes the share of a key generation that failed: a share of a
// failed wallet must never be used.
func (s *shareStore) discard(ctx context.Context, walletID, ceremonyID string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM shares WHERE wallet_id = ? AND keygen_ceremony_id = ? AND state = ?`),
		walletID, ceremonyID, sharePending)
	return err
}

// pending lists shares whose key generation outcome is not known yet.
func (s *shareStore) pending(ctx context.Context) ([]*share, error) {
	var out []*share
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at
		FROM shares WHERE state = ?`), sharePending)
	return out, err
}

// pendingOf returns the pending share a key generation left, or nil.
func (s *shareStore) pendingOf(ctx context.Context, ceremonyID string) (*share, error) {
	var sh share
	err := s.db.GetContext(ctx, &sh, s.db.Rebind(`SELECT wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at
		FROM shares WHERE keygen_ceremony_id = ? AND state = ?`), ceremonyID, sharePending)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load share: %w", err)
	}
	return &sh, nil
}

// active lists the shares that may sign.
func (s *shareStore) active(ctx context.Context) ([]*share, error) {
	var out []*share
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at
		FROM shares WHERE state = ?`), shareActive)
	return out, err
}
