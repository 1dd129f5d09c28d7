// Package ethtest checks secp256k1 signatures produced by Sigil with
// implementations that share no code with Sigil's signing path, for use in
// end-to-end tests: go-ethereum (libsecp256k1 through cgo) for Ethereum
// recovery and verification, and the OpenSSL command line for DER ECDSA.
//
// A signer that agrees with itself proves little; these helpers exist so
// that a test fails when Sigil and the rest of the world disagree about a
// signature, an address or a digest.
//
// go-ethereum only uses libsecp256k1 when cgo is enabled. With
// CGO_ENABLED=0 it falls back to decred's secp256k1, which Sigil also uses;
// the checks still run, but are then less independent. VerifyDER does not
// depend on cgo.
package ethtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	// ErrMalformed is returned (wrapped) for inputs of the wrong shape:
	// lengths, recovery ids or addresses that cannot be parsed.
	ErrMalformed = errors.New("ethtest: malformed input")
	// ErrBadSignature is returned (wrapped) when a well-formed signature
	// does not verify, or recovers to a different address.
	ErrBadSignature = errors.New("ethtest: signature does not verify")
	// ErrHighS is returned by VerifyHash when s is in the upper half of
	// the group order. Such a signature is valid ECDSA, but Ethereum
	// (EIP-2) and Bitcoin policy (BIP-62/146) reject it as malleable, so a
	// signer must normalise s before releasing a signature.
	ErrHighS = errors.New("ethtest: signature s is not low-S normalised")
)

const (
	digestLen = 32
	sigLen    = 65 // r || s || v
)

// RecoverAddress returns the EIP-55 checksummed address that signed digest,
// recovered by go-ethereum. sig65 is r || s || v with v either in {27, 28}
// (the Ethereum RPC and personal_sign convention) or {0, 1} (the raw
// recovery id); both are accepted because Sigil's API and its callers do
// not agree on one.
func RecoverAddress(digest, sig65 []byte) (string, error) {
	if len(digest) != digestLen {
		return "", fmt.Errorf("%w: digest length %d, want %d", ErrMalformed, len(digest), digestLen)
	}
	if len(sig65) != sigLen {
		return "", fmt.Errorf("%w: signature length %d, want %d", ErrMalformed, len(sig65), sigLen)
	}
	// Copy: go-ethereum wants v in {0, 1}, and the caller's slice must
	// not change under it.
	sig := bytes.Clone(sig65)
	switch v := sig[64]; v {
	case 0, 1:
	case 27, 28:
		sig[64] = v - 27
	default:
		return "", fmt.Errorf("%w: recovery byte v=%d, want 0, 1, 27 or 28", ErrMalformed, v)
	}
	pub, err := crypto.SigToPub(digest, sig)
	if err != nil {
		return "", fmt.Errorf("%w: recovery failed: %w", ErrBadSignature, err)
	}
	// Address.Hex applies go-ethereum's own EIP-55 encoder, so comparing
	// its result with Sigil's string also checks Sigil's checksum casing.
	return crypto.PubkeyToAddress(*pub).Hex(), nil
}

// VerifyPersonalSign checks that sig65 is an EIP-191 personal_sign
// signature of message by wantAddress. The digest is computed by
// go-ethereum (accounts.TextHash), not by Sigil, so a wrong prefix or
// length encoding in Sigil's digest makes this fail.
//
// wantAddress is compared as EIP-55 specifies: all-lower or all-upper hex
// is compared without regard to case, and a mixed-case address must match
// the checksummed form exactly, so a wrongly cased address from Sigil is
// caught rather than excused.
func VerifyPersonalSign(message, sig65 []byte, wantAddress string) error {
	if !common.IsHexAddress(wantAddress) {
		return fmt.Errorf("%w: %q is not a hex address", ErrMalformed, wantAddress)
	}
	got, err := RecoverAddress(accounts.TextHash(message), sig65)
	if err != nil {
		return err
	}
	if !strings.EqualFold(got, wantAddress) {
		return fmt.Errorf("%w: recovered %s, want %s", ErrBadSignature, got, wantAddress)
	}
	if isMixedCase(wantAddress) && got != wantAddress {
		return fmt.Errorf("%w: %s has a wrong EIP-55 checksum, want %s", ErrMalformed, wantAddress, got)
	}
	return nil
}

// isMixedCase reports whether a hex address carries an EIP-55 checksum,
// that is, has both upper- and lower-case letters.
func isMixedCase(addr string) bool {
	hexPart := strings.TrimPrefix(strings.TrimPrefix(addr, "0x"), "0X")
	return strings.ToLower(hexPart) != hexPart && strings.ToUpper(hexPart) != hexPart
}

// VerifyHash checks an ECDSA signature (r, s) over a 32-byte digest with
// go-ethereum's crypto.VerifySignature. r and s are big-endian and may be
// shorter than 32 bytes, as big.Int.Bytes produces them.
//
// High-S signatures are refused with ErrHighS even though they are
// mathematically valid: go-ethereum refuses them too, and reporting why
// saves a confused hour when a signer forgets to normalise.
func VerifyHash(pubCompressed, digest, r, s []byte) error {
	if len(pubCompressed) != 33 {
		return fmt.Errorf("%w: public key length %d, want 33", ErrMalformed, len(pubCompressed))
	}
	if len(digest) != digestLen {
		return fmt.Errorf("%w: digest length %d, want %d", ErrMalformed, len(digest), digestLen)
	}
	rs := make([]byte, 64)
	if err := putScalar(rs[:32], r, "r"); err != nil {
		return err
	}
	if err := putScalar(rs[32:], s, "s"); err != nil {
		return err
	}
	// The order comes from go-ethereum, not decred, to keep this check
	// independent of the library Sigil signs with. s >= n is left for
	// go-ethereum to reject as an invalid signature.
	n := crypto.S256().Params().N
	if sInt := new(big.Int).SetBytes(rs[32:]); sInt.Cmp(n) < 0 && sInt.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		return ErrHighS
	}
	if !crypto.VerifySignature(pubCompressed, digest, rs) {
		return ErrBadSignature
	}
	return nil
}

// putScalar left-pads a big-endian integer into a 32-byte slot.
func putScalar(dst, v []byte, name string) error {
	if len(v) > 32 {
		return fmt.Errorf("%w: %s is %d bytes, want at most 32", ErrMalformed, name, len(v))
	}
	copy(dst[32-len(v):], v)
	return nil
}
