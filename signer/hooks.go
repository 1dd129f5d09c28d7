package signer

import (
	"context"
)

// onKeyActive runs once, right after this signer's share of a wallet's key
// epoch became active (its key generation is known to have succeeded): the
// one place new key material is announced, so its backup is queued here.
func (s *Signer) onKeyActive(ctx context.Context, sh *share) {
	s.logger.InfoContext(ctx, "share active", "wallet", sh.WalletID, "key_epoch", sh.KeyEpoch)
	s.queueBackup(ctx, sh)
}
