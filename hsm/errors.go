package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Startup errors are distinct sentinels so that the CLI can tell an operator
// exactly what to fix. Their messages never contain the PIN.
var (
	// ErrModule means the PKCS#11 module could not be loaded or initialised:
	// the file is missing, is not a PKCS#11 library, or C_Initialize failed.
	ErrModule = errors.New("hsm: cannot load PKCS#11 module")
	// ErrTokenNotFound means no initialised token carries the configured label.
	ErrTokenNotFound = errors.New("hsm: token not found")
	// ErrPIN means the token rejected the user PIN (or the PIN is locked).
	ErrPIN = errors.New("hsm: user PIN rejected")
	// ErrNoMasterKey means the token holds no master key with the configured label.
	ErrNoMasterKey = errors.New("hsm: master key not found; run `sigil hsm init-master-key` or `sigil hsm import-master-key`")
	// ErrMasterKeyExists means a master key with the configured label already
	// exists; Sigil never overwrites one, since every wrapped key depends on it.
	ErrMasterKeyExists = errors.New("hsm: master key already exists")
	// ErrMasterKeyPolicy means a key with the master key label exists but its
	// attributes make it unfit (extractable, not sensitive, not AES-256 ...).
	ErrMasterKeyPolicy = errors.New("hsm: master key attributes are unsafe")
	// ErrNoAttestationKey means the token holds no attestation key with the
	// configured label.
	ErrNoAttestationKey = errors.New("hsm: attestation key not found; run `sigil hsm init-attestation-key`")
	// ErrAttestationKeyExists means the token already has an attestation key.
	ErrAttestationKeyExists = errors.New("hsm: attestation key already exists")
	// ErrAttestationKeyPolicy means a key with the attestation key label is
	// unfit (extractable, imported, not one pair ...).
	ErrAttestationKeyPolicy = errors.New("hsm: attestation key attributes are unsafe")
	// ErrClosed is returned by operations on a closed handle.
	ErrClosed = errors.New("hsm: handle closed")
	// ErrInvalidInput reports a malformed argument (digest, public key, blob).
	ErrInvalidInput = errors.New("hsm: invalid input")
	// ErrWrappedKey means the HSM refused to unwrap a blob: it is corrupt, or
	// was wrapped under a different master key. Retrying will not help.
	ErrWrappedKey = errors.New("hsm: wrapped key rejected (corrupt, or wrapped under another master key)")
	// ErrSignature means the HSM produced a signature that does not verify
	// against the given public key, typically because the wrapped blob belongs
	// to another key. The signature is never returned in that case.
	ErrSignature = errors.New("hsm: signature does not verify against public key")
)

// ckrError wraps a PKCS#11 return value with the operation that produced it.
// The raw pkcs11.Error stays reachable with errors.As for callers that need
// the CKR code.
func ckrError(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("hsm: %s: %w", op, err)
}

// isCKR reports whether err carries the PKCS#11 return value rv.
func isCKR(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// sessionBroken reports whether err means the session itself is unusable, so
// the pool must replace it rather than hand it out again.
func sessionBroken(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_OPERATION_ACTIVE:
		return true
	}
	return false
}

// staleKeyHandle reports whether err says an object handle, in practice the
// master key's, is no longer valid.
func staleKeyHandle(err error) bool {
	return isCKR(err, pkcs11.CKR_KEY_HANDLE_INVALID) ||
		isCKR(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) ||
		isCKR(err, pkcs11.CKR_WRAPPING_KEY_HANDLE_INVALID) ||
		isCKR(err, pkcs11.CKR_UNWRAPPING_KEY_HANDLE_INVALID)
}
