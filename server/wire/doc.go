// Package wire is what both coordinator ports (the API port and the node
// port) do the same way at the edge of every RPC: decode JSON strictly
// (unknown fields and enum names are refused), enforce the protovalidate
// rules of the contracts, and turn every error into a Connect error that
// carries a machine-readable reason (sigil.wallet.v1.ErrorDetail). Domain
// errors are mapped to codes and reasons here and nowhere else.
//
// Adding a reason: one value at the end of ErrorReason in
// proto/sigil/wallet/v1/errors.proto (then `make gen`), and one sentinel
// where the condition is detected:
//
//	var ErrRejected = wire.NewSentinel(connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_REQUEST_REJECTED, "request rejected")
//
// Handlers return it wrapped (fmt.Errorf("...: %w", ErrRejected)); the
// error interceptor both ports install attaches the code and reason.
package wire
