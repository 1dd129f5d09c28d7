package node

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	"github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1/deliveryv1connect"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/internal/pki"
)

// serviceRoles says which certificate role may call each node service.
var serviceRoles = map[string]string{
	ceremonyv1connect.CeremonyServiceName: pki.RoleSigner,
	deliveryv1connect.DeliveryServiceName: pki.RoleSigner,
	driverv1connect.DriverServiceName:     pki.RoleDriver,
}

// RoleInterceptor refuses a caller whose certificate role does not match
// the service (a driver calling the relay, a signer claiming HSM jobs), and
// any procedure not listed.
type RoleInterceptor struct{}

func (RoleInterceptor) check(ctx context.Context, procedure string) error {
	service, _, _ := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	role, ok := serviceRoles[service]
	if !ok {
		return connect.NewError(connect.CodePermissionDenied, errors.New("unknown node service"))
	}
	_, err := requireRole(ctx, role)
	return err
}

// WrapUnary checks unary calls.
func (r RoleInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := r.check(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient is a no-op: the interceptor is for servers.
func (RoleInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler checks streaming calls.
func (r RoleInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := r.check(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
