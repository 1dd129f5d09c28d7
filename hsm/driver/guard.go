package driver

import (
	"context"
	"errors"
	"fmt"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/internal/guard"
)

// authorize decides, before the wrapped key is even loaded, whether this
// driver signs the job; the decision is journaled durably first. A
// *guard.Refusal rejects the request; a gate failure is permanent for the
// job (nothing is signed, and the application may ask again).
func (d *Driver) authorize(ctx context.Context, job *driverv1.Job) error {
	if d.guard == nil {
		return nil
	}
	err := d.guard.Authorize(ctx, &guard.Request{
		WorkID: job.GetId(), SignatureID: job.GetSignatureId(), WalletID: job.GetWalletId(), PublicKey: job.GetPublicKey(),
		Kind: job.GetSignatureKind(), Payload: job.GetPayload(), Digest: job.GetDigest(), ExternalID: job.GetExternalId(),
		SignedRequest: job.GetSignedRequest(),
	})
	if errors.Is(err, guard.ErrGateFailed) {
		// The coordinator shows this reason as is: say whose gate failed.
		err = fmt.Errorf("%s: %w", d.guard.Node(), err)
	}
	if err != nil {
		return permanent(err)
	}
	return nil
}
