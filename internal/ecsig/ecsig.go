// Package ecsig is Sigil's one representation of a secp256k1 ECDSA signature.
//
// Both key backends (the MPC signers and the HSM drivers) produce a raw (r, s)
// pair; this package turns that pair into the canonical form every API consumer
// sees: S in the low half of the group order (BIP-62 / EIP-2), plus the
// recovery id, so one value can be rendered as DER, as Ethereum's 65-byte
// r||s||v, or as separate fields. Verification uses decred's secp256k1, which
// is independent of the MPC library, so a bug there cannot hide behind itself.
package ecsig

import (
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// DigestSize is the only digest length Sigil signs: every supported scheme
// (Ethereum, Bitcoin) hashes to 32 bytes, and accepting other lengths would
// invite silent truncation differences between implementations.
const DigestSize = 32

var (
	// ErrInvalidDigest means the digest is not exactly DigestSize bytes.
	ErrInvalidDigest = errors.New("ecsig: digest must be 32 bytes")
	// ErrInvalidPublicKey means the public key is not a valid secp256k1 point encoding.
	ErrInvalidPublicKey = errors.New("ecsig: invalid public key")
	// ErrInvalidScalar means r or s is zero, too long or not below the group order.
	ErrInvalidScalar = errors.New("ecsig: r or s out of range")
	// ErrVerify means (r, s) is not a valid signature of digest under the public key.
	ErrVerify = errors.New("ecsig: signature does not verify")
)

// Signature is a verified, normalised secp256k1 ECDSA signature.
//
// S is always in the lower half of the group order. V is the recovery id
// (0 or 1; 2 or 3 only when R's x coordinate exceeded the group order, which
// happens with probability about 2^-128 and which Ethereum cannot express).
type Signature struct {
	R, S [32]byte
	V    byte
}

// compact recovery header used by decred: 27 + recovery id + 4 for a
// compressed key.
const compactHeader = 27 + 4

// FromRS normalises (r, s) to low-S, computes the recovery id against pub (a
// 33-byte compressed or 65-byte uncompressed key) and verifies the result.
// r and s are big-endian and may be shorter than 32 bytes (leading zeros
// stripped, as some HSMs and ASN.1 decoders return them).
func FromRS(r, s, pub, digest []byte) (Signature, error) {
	return FromRSHint(r, s, pub, digest, 0)
}

// FromRSHint is FromRS trying recovery id hint (0 or 1; of any other value
// only the lowest bit counts) first: with the id the signer found, the check costs one
// public key recovery instead of one or two. The hint only orders the
// work; a wrong one changes nothing but the cost.
func FromRSHint(r, s, pub, digest []byte, hint byte) (Signature, error) {
	if len(digest) != DigestSize {
		return Signature{}, ErrInvalidDigest
	}
	var rs, ss secp256k1.ModNScalar
	if err := setScalar(&rs, r); err != nil {
		return Signature{}, err
	}
	if err := setScalar(&ss, s); err != nil {
		return Signature{}, err
	}
	// (r, s) and (r, n-s) are both valid; fixing the low one removes the
	// malleability that blockchains reject.
	if ss.IsOverHalfOrder() {
		ss.Negate()
	}
	sig := Signature{R: rs.Bytes(), S: ss.Bytes()}
	if v, ok := recoverFast(&sig.R, &sig.S, digest, pub, hint&1); ok {
		sig.V = v
		return sig, nil
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return Signature{}, fmt.Errorf("%w: %w", ErrInvalidPublicKey, err)
	}
	v, ok := verifyRecover(&rs, &ss, digest, pk)
	if !ok {
		return Signature{}, ErrVerify
	}
	sig.V = v
	return sig, nil
}

// verifyRecover is ECDSA verification that keeps the point it computes:
// R = (e/s)·G + (r/s)·Q must not be infinity and R.x mod n must equal r;
// then R itself names the recovery id (bit 0: R.y odd; bit 1: R.x >= n),
// the id under which public key recovery yields Q. One double scalar
// multiplication, where verifying and then trying recovery ids took two
// to five.
func verifyRecover(r, s *secp256k1.ModNScalar, digest []byte, pk *secp256k1.PublicKey) (byte, bool) {
	var e, w, u1, u2 secp256k1.ModNScalar
	e.SetByteSlice(digest)
	w.InverseValNonConst(s)
	u1.Mul2(&e, &w)
	u2.Mul2(r, &w)
	var q, p1, p2, pt secp256k1.JacobianPoint
	pk.AsJacobian(&q)
	secp256k1.ScalarBaseMultNonConst(&u1, &p1)
	secp256k1.ScalarMultNonConst(&u2, &q, &p2)
	secp256k1.AddNonConst(&p1, &p2, &pt)
	if pt.Z.IsZero() || (pt.X.IsZero() && pt.Y.IsZero()) {
		return 0, false
	}
	pt.ToAffine()
	var xb [32]byte
	pt.X.PutBytes(&xb)
	var x secp256k1.ModNScalar
	overflow := x.SetBytes(&xb) != 0
	if !x.Equals(r) {
		return 0, false
	}
	var v byte
	if pt.Y.IsOdd() {
		v = 1
	}
	if overflow {
		v += 2
	}
	return v, true
}

// recoveryID finds the id under which public key recovery yields pk, by
// recovery itself: the independent check that Verify makes of v.
func recoveryID(sig Signature, digest []byte, pk *secp256k1.PublicKey) (byte, bool) {
	var compact [65]byte
	copy(compact[1:33], sig.R[:])
	copy(compact[33:], sig.S[:])
	compact[0] = compactHeader + sig.V
	got, _, err := ecdsa.RecoverCompact(compact[:], digest)
	return sig.V, err == nil && got.IsEqual(pk)
}

func setScalar(dst *secp256k1.ModNScalar, b []byte) error {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > 32 {
		return ErrInvalidScalar
	}
	if overflow := dst.SetByteSlice(b); overflow || dst.IsZero() {
		return ErrInvalidScalar
	}
	return nil
}

// DER returns the ASN.1 DER encoding (SEQUENCE of two INTEGERs), as Bitcoin
// and most X.509-style verifiers expect.
func (sig Signature) DER() []byte {
	var r, s secp256k1.ModNScalar
	r.SetBytes(&sig.R)
	s.SetBytes(&sig.S)
	return ecdsa.NewSignature(&r, &s).Serialize()
}

// Ethereum returns the 65-byte r||s||v form with v the raw recovery id (0 or
// 1). Callers that need the legacy 27/28 or EIP-155 values add the offset
// themselves: which one is right depends on the transaction type.
func (sig Signature) Ethereum() []byte {
	out := make([]byte, 65)
	copy(out[:32], sig.R[:])
	copy(out[32:64], sig.S[:])
	out[64] = sig.V
	return out
}

// Verify reports whether sig is a valid, low-S signature of digest under pub
// whose recovery id recovers pub. It is the check the coordinator runs before
// it calls a signature request signed, so it accepts nothing FromRS would not
// produce.
func Verify(pub, digest []byte, sig Signature) bool {
	if len(digest) != DigestSize {
		return false
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return false
	}
	var r, s secp256k1.ModNScalar
	if r.SetBytes(&sig.R) != 0 || r.IsZero() || s.SetBytes(&sig.S) != 0 || s.IsZero() {
		return false
	}
	if s.IsOverHalfOrder() {
		return false
	}
	// Verification by the library's own routine, and the recovery id by
	// recovery: an independent second opinion on what FromRS computed.
	if !ecdsa.NewSignature(&r, &s).Verify(digest, pk) {
		return false
	}
	_, ok := recoveryID(sig, digest, pk)
	return ok
}
