package api

import (
	"context"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/wire"
)

// ErrBackendUnavailable reports that the requested backend is not
// configured here.
var ErrBackendUnavailable = wire.NewSentinel(connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_BACKEND_UNAVAILABLE, "backend unavailable")

// toConnect maps a domain error with the one mapper both ports share
// (wire.ToConnect): errors it does not know become Internal with a safe
// message; the cause is logged, never sent to the client.
func (s *WalletServer) toConnect(ctx context.Context, err error) error {
	return wire.ToConnect(ctx, s.logger, err)
}
