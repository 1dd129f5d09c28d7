package signer

import (
	"context"
	"errors"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/guard"
)

// authorize decides, once per signing ceremony and before the share is
// even loaded, whether this signer takes part; the decision is journaled
// durably first. A refusal rejects the request (no other quorum is tried).
func (s *Signer) authorize(ctx context.Context, c *ceremonyv1.Ceremony) error {
	err := s.guard.Authorize(ctx, &guard.Request{
		WorkID: c.GetId(), SignatureID: c.GetSignatureId(), WalletID: c.GetWalletId(), PublicKey: c.GetPublicKey(), KeyScheme: c.GetKeyScheme(),
		Kind: c.GetSignatureKind(), Payload: c.GetPayload(), Digest: c.GetDigest(), ExternalID: c.GetExternalId(),
		SignedRequest: c.GetSignedRequest(),
	})
	var refusal *guard.Refusal
	if errors.As(err, &refusal) {
		return rejection(refusal.Reason)
	}
	if err != nil {
		return err
	}
	return checkDigest(c)
}

// rejection is a refusal whose text (the guard's reason) goes to the
// coordinator as is; it is an errRejected, so the request is rejected.
type rejection string

func (r rejection) Error() string { return string(r) }
func (r rejection) Unwrap() error { return errRejected }
