package sigil

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
)

// Reason returns the machine-readable reason the server attached to err
// (a sigil.wallet.v1.ErrorDetail in the error details), such as
// ERROR_REASON_WALLET_NOT_ACTIVE or ERROR_REASON_IDEMPOTENCY_CONFLICT. It
// returns ERROR_REASON_UNSPECIFIED when err carries none: errors made by
// the client itself (a timeout, an unreachable server), or a server older
// than reasons. Compare the result with the walletv1.ErrorReason constants;
// a reason this SDK does not know yet comes back as its number.
func Reason(err error) walletv1.ErrorReason {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if detail, ok := v.(*walletv1.ErrorDetail); derr == nil && ok {
			return detail.GetReason()
		}
	}
	return walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

func hasCode(err error, code connect.Code) bool {
	return err != nil && connect.CodeOf(err) == code
}

// IsNotFound reports whether the wallet or signature asked for does not
// exist (connect.CodeNotFound).
func IsNotFound(err error) bool { return hasCode(err, connect.CodeNotFound) }

// IsPermissionDenied reports whether the token lacks the scope the call
// needs (connect.CodePermissionDenied).
func IsPermissionDenied(err error) bool { return hasCode(err, connect.CodePermissionDenied) }

// IsUnauthenticated reports whether the token is missing, unknown or revoked
// (connect.CodeUnauthenticated).
func IsUnauthenticated(err error) bool { return hasCode(err, connect.CodeUnauthenticated) }

// IsInvalidArgument reports whether the request was malformed
// (connect.CodeInvalidArgument): a bad id, a hash that is not 32 bytes, an
// empty message, a field too long.
func IsInvalidArgument(err error) bool { return hasCode(err, connect.CodeInvalidArgument) }

// IsFailedPrecondition reports whether the request is valid but cannot be
// served now (connect.CodeFailedPrecondition), such as signing with a wallet
// that is not ACTIVE or asking for a backend the server does not run.
func IsFailedPrecondition(err error) bool { return hasCode(err, connect.CodeFailedPrecondition) }

// IsAlreadyExists reports whether an external ID was reused with a
// different request (connect.CodeAlreadyExists).
func IsAlreadyExists(err error) bool { return hasCode(err, connect.CodeAlreadyExists) }

// IsDeadlineExceeded reports whether a call, or a wait for a wallet or a
// signature, ran out of time (connect.CodeDeadlineExceeded).
func IsDeadlineExceeded(err error) bool { return hasCode(err, connect.CodeDeadlineExceeded) }

// IsCanceled reports whether the caller canceled the call or the wait
// through its context (connect.CodeCanceled).
func IsCanceled(err error) bool { return hasCode(err, connect.CodeCanceled) }

// IsUnavailable reports whether the server could not be reached or is
// overloaded (connect.CodeUnavailable): down, wrong URL, network failure.
func IsUnavailable(err error) bool { return hasCode(err, connect.CodeUnavailable) }

// IsResourceExhausted reports whether the server refused a request as too
// large or too frequent (connect.CodeResourceExhausted).
func IsResourceExhausted(err error) bool { return hasCode(err, connect.CodeResourceExhausted) }

// WalletFailedError is returned by WaitWallet and CreateWalletAndWait when
// the wallet's key generation failed (status FAILED). Find it with
// errors.As.
type WalletFailedError struct {
	// Wallet is the wallet as last read, in status FAILED.
	Wallet *walletv1.Wallet
}

// Error says which wallet failed and why.
func (e *WalletFailedError) Error() string {
	return fmt.Sprintf("sigil: wallet %s failed: %s", e.Wallet.GetId(), orNoReason(e.Wallet.GetFailureReason()))
}

// Reason is the server's failure reason.
func (e *WalletFailedError) Reason() string { return e.Wallet.GetFailureReason() }

// SignatureFailedError is returned by WaitSignature, SignHash and
// SignMessage when a signature request ended REJECTED (a validation policy
// refused it) or FAILED (the backend could not sign). Find it with
// errors.As.
type SignatureFailedError struct {
	// Signature is the request as last read, in status REJECTED or FAILED.
	Signature *walletv1.Signature
}

// Error says which request failed, how, and why.
func (e *SignatureFailedError) Error() string {
	how := "failed"
	if e.Rejected() {
		how = "was rejected"
	}
	return fmt.Sprintf("sigil: signature %s %s: %s", e.Signature.GetId(), how, orNoReason(e.Signature.GetFailureReason()))
}

// Rejected reports whether a validation policy refused to sign (status
// REJECTED) rather than the backend failing.
func (e *SignatureFailedError) Rejected() bool {
	return e.Signature.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED
}

// Reason is the server's failure reason.
func (e *SignatureFailedError) Reason() string { return e.Signature.GetFailureReason() }

func orNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}
