package api

import (
	"context"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/wire"
)

// owner is who owns the external ids of this call (see
// auth.Principal.Owner); "" when no principal was authenticated, as in
// handler tests without the auth interceptor.
func owner(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.Owner()
	}
	return ""
}

// checkReplay lets a repeated request (an external id its owner already
// used, with the same body) have the existing resource only when the
// caller may read it: a token that may create wallets or signatures but
// not read them would otherwise read status, keys, addresses and results
// by repeating a request. The error names the resource the caller made.
func checkReplay(ctx context.Context, kind, id, externalID string) error {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok || p.Has(auth.ScopeWalletsRead) {
		return nil
	}
	return wire.Errorf(connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED,
		"external_id %q already names %s %s; returning it again needs the %q scope", externalID, kind, id, auth.ScopeWalletsRead)
}
