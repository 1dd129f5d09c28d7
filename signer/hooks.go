package signer

import (
	"context"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
)

// authorize decides whether this signer may use its share for what c asks
// it to sign. Every check of a signing request runs here, once, before any
// share is loaded and before anything leaves this signer: a refusal wraps
// errRejected, so the coordinator rejects the request rather than retry it.
func (s *Signer) authorize(_ context.Context, c *ceremonyv1.Ceremony) error {
	return checkDigest(c)
}

// onKeyActive runs once, right after this signer's share of a wallet's key
// epoch became active (its key generation is known to have succeeded).
func (s *Signer) onKeyActive(ctx context.Context, walletID string, epoch int) {
	s.logger.InfoContext(ctx, "share active", "wallet", walletID, "key_epoch", epoch)
}
