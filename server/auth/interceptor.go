package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

// Interceptor checks the bearer token of every call to a procedure listed in
// its scope table and refuses procedures it does not know, so a new RPC
// cannot go unprotected by omission.
type Interceptor struct {
	tokens store.Tokens
	scopes map[string]Scope
	logger *slog.Logger
}

// NewInterceptor returns an interceptor that requires, for each procedure
// (e.g. "/sigil.wallet.v1.WalletService/GetWallet"), the mapped scope.
func NewInterceptor(tokens store.Tokens, scopes map[string]Scope, logger *slog.Logger) *Interceptor {
	return &Interceptor{tokens: tokens, scopes: scopes, logger: logger}
}

// WrapUnary authenticates unary calls.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient is a no-op: the interceptor is for servers.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler authenticates streaming calls.
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func (i *Interceptor) authenticate(ctx context.Context, procedure, header string) (context.Context, error) {
	need, known := i.scopes[procedure]
	if !known {
		return ctx, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("procedure %s is not open to API tokens", procedure))
	}
	scheme, token, ok := strings.Cut(header, " ")
	if header == "" {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New(`missing API token: send "Authorization: Bearer <token>" (create one with "sigil token create")`))
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New(`malformed Authorization header: want "Bearer <token>"`))
	}
	t, err := i.tokens.TokenByHash(ctx, Hash(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("invalid API token"))
	case err != nil:
		i.logger.ErrorContext(ctx, "token lookup failed", "procedure", procedure, "error", err)
		return ctx, connect.NewError(connect.CodeUnavailable, errors.New("could not check the API token; try again"))
	case t.RevokedAt != nil:
		return ctx, wire.Errorf(connect.CodeUnauthenticated, walletv1.ErrorReason_ERROR_REASON_TOKEN_REVOKED, "API token revoked")
	}
	// The lookup is by hash; this comparison only guards against a store
	// that matched loosely.
	if subtle.ConstantTimeCompare(t.Hash, Hash(token)) != 1 {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("invalid API token"))
	}
	p := &Principal{TokenID: t.ID, Tenant: t.Tenant}
	for _, s := range t.Scopes {
		p.Scopes = append(p.Scopes, Scope(s))
	}
	if !p.Has(need) {
		return ctx, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("API token lacks the %q scope this call needs", need))
	}
	return WithPrincipal(ctx, p), nil
}
