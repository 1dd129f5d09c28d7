package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// Key pool statuses: a pooled key is a wallet row made ahead, hidden from
// the API (GetWallet, ListWallets and signing see none of them) until
// CreateWallet takes it. Its key generation ran under its id, so the
// signers' shares need no change when it is assigned.
const (
	// WalletPooling: the pooled key's generation runs.
	WalletPooling WalletStatus = "pooling"
	// WalletPooled: generated, waiting to be assigned.
	WalletPooled WalletStatus = "pooled"
	// WalletPoolFailed: the pooled key's generation failed.
	WalletPoolFailed WalletStatus = "pool_failed"
)

// hiddenStatuses are the statuses the API never shows.
const hiddenStatuses = `('pooling', 'pooled', 'pool_failed')`

// KeyPool is what the wallet API and the orchestrator need of the key pool.
type KeyPool interface {
	// AssignPooledWallet gives w (name, external id, request hash) a pooled
	// key of the same group and scheme, in one transaction, and returns the
	// wallet, now active under the pooled key's id. Idempotency works as in
	// CreateWallet. ErrNotFound when the pool is empty: the caller creates
	// the wallet with a key generation instead. A pooled key is assigned
	// once.
	AssignPooledWallet(ctx context.Context, w *Wallet) (*Wallet, bool, error)
	// PooledKeys counts the pooled keys (generating or ready) of a group.
	PooledKeys(ctx context.Context, threshold int, signers []string) (int, error)
}

// AssignPooledWallet takes a pooled key for w. See KeyPool.
func (s *SQL) AssignPooledWallet(ctx context.Context, w *Wallet) (*Wallet, bool, error) {
	now := s.now().UTC()
	var existing, assigned *Wallet
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if w.ExternalID != "" {
			got, err := s.walletByExternalID(ctx, tx, w.Owner, w.ExternalID)
			if err == nil {
				existing = got
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		var r walletRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+walletColumns+` FROM wallets
			WHERE status = ? AND backend = ? AND key_scheme = ? AND mpc_threshold = ? AND mpc_signers = ?
			ORDER BY seq LIMIT 1`+s.forUpdate(true)),
			string(WalletPooled), string(BackendMPC), w.KeyScheme, w.Threshold, joinNames(w.Signers))
		if err != nil {
			if errors.Is(err, errNoRows) {
				return ErrNotFound
			}
			return fmt.Errorf("select pooled key: %w", err)
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET status = ?, owner = ?, external_id = ?, request_hash = ?, name = ?,
			created_at = ?, updated_at = ? WHERE id = ? AND status = ?`),
			string(WalletActive), w.Owner, nullString(scopedExternalID(w.Owner, w.ExternalID)), w.RequestHash, w.Name, micros(now), micros(now), r.ID, string(WalletPooled))
		if err != nil {
			return fmt.Errorf("assign pooled key: %w", err)
		}
		if err := expectOne(res, fmt.Errorf("%w: pooled key %s was taken", ErrStateConflict, r.ID)); err != nil {
			return err
		}
		assigned = r.wallet()
		assigned.Status, assigned.Owner, assigned.ExternalID, assigned.RequestHash, assigned.Name = WalletActive, w.Owner, w.ExternalID, w.RequestHash, w.Name
		assigned.CreatedAt, assigned.UpdatedAt = now, now
		return nil
	})
	if err != nil && w.ExternalID != "" && db.IsUniqueViolation(err) {
		// A concurrent request with the same external id won the race.
		existing, err = s.walletByExternalID(ctx, s.db, w.Owner, w.ExternalID)
	}
	switch {
	case err != nil:
		return nil, false, err
	case existing != nil:
		if string(existing.RequestHash) != string(w.RequestHash) {
			return nil, false, ErrIdempotencyConflict
		}
		return existing, false, nil
	}
	return assigned, true, nil
}

// PooledKeys counts a group's pooled keys. See KeyPool.
func (s *SQL) PooledKeys(ctx context.Context, threshold int, signers []string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM wallets
		WHERE status IN (?, ?) AND backend = ? AND mpc_threshold = ? AND mpc_signers = ?`),
		string(WalletPooling), string(WalletPooled), string(BackendMPC), threshold, joinNames(signers))
	return n, err
}
