// Package node serves the coordinator's node port: the services MPC signers
// (CeremonyService, DeliveryService) and HSM drivers (DriverService) call.
// Every caller is authenticated by its mTLS client certificate, which must
// chain to the node CA; its identity (name and role) comes from that
// certificate and nothing else.
package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server/wire"
)

type identityKey struct{}

// PeerFrom returns the certificate identity of the caller. Handlers behind
// RequireIdentity always have one.
func PeerFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// WithPeer returns ctx carrying id; for tests of one handler.
func WithPeer(ctx context.Context, id pki.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// RequireIdentity puts the verified certificate identity of the caller in
// the request context and refuses requests without one. The TLS layer has
// already refused clients without a certificate of the node CA; this also
// refuses bearer tokens, which are never accepted on the node port.
func RequireIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			writeError(w, r, connect.NewError(connect.CodeUnauthenticated,
				errors.New("API tokens are not accepted on the node port: signers and drivers authenticate with their certificate")))
			return
		}
		if r.TLS == nil {
			writeError(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New("the node port requires mTLS")))
			return
		}
		id, err := pki.IdentityFromTLS(r.TLS)
		if err != nil {
			writeError(w, r, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("client certificate: %w", err)))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPeer(r.Context(), id)))
	})
}

// writeError answers in the protocol the client speaks, so Connect and
// gRPC clients both see a proper status.
func writeError(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	ew := connect.NewErrorWriter()
	if ew.IsSupported(r) {
		_ = ew.Write(w, r, wire.ToConnect(r.Context(), nil, err))
		return
	}
	http.Error(w, err.Message(), http.StatusUnauthorized)
}

// requireRole checks the caller has the role a service is for.
func requireRole(ctx context.Context, role string) (pki.Identity, error) {
	id, ok := PeerFrom(ctx)
	if !ok {
		return id, connect.NewError(connect.CodeUnauthenticated, errors.New("no client certificate identity"))
	}
	if id.Role != role {
		return id, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s may not call this service: it is for %ss", id, role))
	}
	return id, nil
}
