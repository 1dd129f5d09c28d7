package store

import (
	"context"
	"fmt"
)

// ActivateWallet moves a creating wallet to active. It fails with
// ErrStateConflict when the wallet is no longer creating, so a late or
// repeated report never revives a failed wallet or changes a key.
func (s *SQL) ActivateWallet(ctx context.Context, id string, publicKey []byte) error {
	if len(publicKey) != 33 {
		return fmt.Errorf("activate wallet %s: public key is %d bytes, want 33", id, len(publicKey))
	}
	return s.finishWallet(ctx, id, `status = ?, public_key = ?`, string(WalletActive), publicKey)
}

// FailWallet moves a creating wallet to failed with a reason.
func (s *SQL) FailWallet(ctx context.Context, id string, reason string) error {
	return s.finishWallet(ctx, id, `status = ?, failure_reason = ?`, string(WalletFailed), reason)
}

func (s *SQL) finishWallet(ctx context.Context, id, set string, args ...any) error {
	args = append(args, micros(s.now()), id, string(WalletCreating))
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE wallets SET `+set+`, updated_at = ? WHERE id = ? AND status = ?`), args...)
	if err != nil {
		return fmt.Errorf("update wallet %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update wallet %s: %w", id, err)
	}
	if n == 0 {
		if _, err := s.GetWallet(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: wallet %s is not creating", ErrStateConflict, id)
	}
	return nil
}
