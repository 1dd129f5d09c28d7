package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// Reason is the machine-readable reason of an error (see errors.proto).
type Reason = walletv1.ErrorReason

// Sentinel is a domain error that knows its Connect code and reason.
// Declare one per condition, in the package that detects it, and wrap it
// with fmt.Errorf("...: %w", ErrX) for details; ToConnect keeps the
// message and attaches the reason:
//
//	var ErrBackendUnavailable = wire.NewSentinel(connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_BACKEND_UNAVAILABLE, "backend unavailable")
type Sentinel struct {
	code   connect.Code
	reason Reason
	msg    string
}

// NewSentinel returns a domain error with its code and reason.
func NewSentinel(code connect.Code, reason Reason, msg string) *Sentinel {
	return &Sentinel{code: code, reason: reason, msg: msg}
}

func (s *Sentinel) Error() string { return s.msg }

// Code is the Connect code the sentinel maps to.
func (s *Sentinel) Code() connect.Code { return s.code }

// Reason is the reason the sentinel carries.
func (s *Sentinel) Reason() Reason { return s.reason }

// storeErrors maps the store's sentinel errors, which know nothing of
// Connect. One line per error.
var storeErrors = []struct {
	err    error
	code   connect.Code
	reason Reason
}{
	{store.ErrNotFound, connect.CodeNotFound, walletv1.ErrorReason_ERROR_REASON_NOT_FOUND},
	{store.ErrIdempotencyConflict, connect.CodeAlreadyExists, walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT},
	{store.ErrWalletNotActive, connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE},
	{store.ErrStateConflict, connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_STATE_CONFLICT},
	{store.ErrNotLeaseHolder, connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED},
}

// codeReasons is the reason given to an error that names none: Connect
// errors made directly by handlers, interceptors and the Connect runtime.
var codeReasons = map[connect.Code]Reason{
	connect.CodeInvalidArgument:    walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT,
	connect.CodeUnauthenticated:    walletv1.ErrorReason_ERROR_REASON_UNAUTHENTICATED,
	connect.CodePermissionDenied:   walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED,
	connect.CodeNotFound:           walletv1.ErrorReason_ERROR_REASON_NOT_FOUND,
	connect.CodeAlreadyExists:      walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT,
	connect.CodeResourceExhausted:  walletv1.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE,
	connect.CodeUnavailable:        walletv1.ErrorReason_ERROR_REASON_UNAVAILABLE,
	connect.CodeCanceled:           walletv1.ErrorReason_ERROR_REASON_CANCELED,
	connect.CodeDeadlineExceeded:   walletv1.ErrorReason_ERROR_REASON_DEADLINE_EXCEEDED,
	connect.CodeInternal:           walletv1.ErrorReason_ERROR_REASON_INTERNAL,
	connect.CodeUnknown:            walletv1.ErrorReason_ERROR_REASON_INTERNAL,
	connect.CodeFailedPrecondition: walletv1.ErrorReason_ERROR_REASON_STATE_CONFLICT,
}

// Errorf returns a Connect error with a code, a reason and a message.
func Errorf(code connect.Code, reason Reason, format string, args ...any) *connect.Error {
	return WithReason(connect.NewError(code, fmt.Errorf(format, args...)), reason)
}

// WithReason returns ce with reason attached, unless it carries one
// already. ce itself is not changed (it may be a shared variable): the
// result is a copy with the same code, message, details and metadata.
func WithReason(ce *connect.Error, reason Reason) *connect.Error {
	if _, ok := ReasonOf(ce); ok {
		return ce
	}
	out := connect.NewError(ce.Code(), ce.Unwrap())
	for _, d := range ce.Details() {
		out.AddDetail(d)
	}
	for k, v := range ce.Meta() {
		out.Meta()[k] = v
	}
	if d, err := connect.NewErrorDetail(&walletv1.ErrorDetail{Reason: reason}); err == nil {
		out.AddDetail(d)
	}
	return out
}

// ReasonOf returns the reason an error carries, if any.
func ReasonOf(err error) (Reason, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return 0, false
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if detail, ok := v.(*walletv1.ErrorDetail); derr == nil && ok {
			return detail.GetReason(), true
		}
	}
	return 0, false
}

// ToConnect is the one mapping of errors to Connect errors with reasons,
// for both ports. A Connect error keeps its code and message and gets the
// reason of its code when it has none; a Sentinel or store error gets its
// code and reason with the message of the whole chain; a context error
// says canceled or deadline exceeded; anything else is Internal with a safe
// message, its cause logged and never sent.
func ToConnect(ctx context.Context, logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return WithReason(ce, reasonOfCode(ce.Code()))
	}
	var s *Sentinel
	if errors.As(err, &s) {
		return WithReason(connect.NewError(s.code, err), s.reason)
	}
	for _, m := range storeErrors {
		if errors.Is(err, m.err) {
			return WithReason(connect.NewError(m.code, err), m.reason)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Errorf(connect.CodeCanceled, walletv1.ErrorReason_ERROR_REASON_CANCELED, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(connect.CodeDeadlineExceeded, walletv1.ErrorReason_ERROR_REASON_DEADLINE_EXCEEDED, "deadline exceeded")
	}
	if logger != nil {
		logger.ErrorContext(ctx, "internal error", "error", err)
	}
	return Errorf(connect.CodeInternal, walletv1.ErrorReason_ERROR_REASON_INTERNAL, "internal error; the server log has the details")
}

func reasonOfCode(c connect.Code) Reason {
	if r, ok := codeReasons[c]; ok {
		return r
	}
	return walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}
