package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/server/store"
)

// toConnect is the one place domain errors become Connect errors. Errors it
// does not know become Internal with a safe message; the cause is logged,
// never sent to the client.
func (s *WalletServer) toConnect(ctx context.Context, err error) error {
	return ToConnect(ctx, s.logger, err)
}

// ToConnect maps a domain error to a Connect error. See toConnect.
func ToConnect(ctx context.Context, logger interface {
	ErrorContext(ctx context.Context, msg string, args ...any)
}, err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, store.ErrIdempotencyConflict):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, store.ErrWalletNotActive), errors.Is(err, ErrBackendUnavailable), errors.Is(err, store.ErrStateConflict):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ErrSchemeUnsupported):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, ErrBadPageToken), errors.Is(err, ErrInvalidRequest):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	default:
		logger.ErrorContext(ctx, "internal error", "error", err)
		return connect.NewError(connect.CodeInternal, errors.New("internal error; the server log has the details"))
	}
}
