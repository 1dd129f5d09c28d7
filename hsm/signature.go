package hsm

import (
	"encoding/asn1"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Signature is a secp256k1 ECDSA signature with S in the low half of the
// order (BIP-62 / EIP-2) and the recovery id V in {0, 1}.
type Signature struct {
	R, S [32]byte
	V    byte
}

// DER returns the ASN.1 DER encoding (SEQUENCE of two INTEGERs), as Bitcoin
// and most X.509-style verifiers expect.
func (s Signature) DER() []byte {
	var r, ss secp256k1.ModNScalar
	r.SetBytes(&s.R)
	ss.SetBytes(&s.S)
	return ecdsa.NewSignature(&r, &ss).Serialize()
}

// Ethereum returns the 65-byte r||s||v form with v in {0, 1}, as
// go-ethereum's crypto.Sign returns and typed transactions (EIP-2718) carry
// as y-parity. Legacy eth_sign / personal_sign consumers expect v+27 and
// EIP-155 legacy transactions expect v + 35 + 2*chainID; callers add those
// offsets, since only they know which one applies.
func (s Signature) Ethereum() []byte {
	out := make([]byte, 0, 65)
	out = append(out, s.R[:]...)
	out = append(out, s.S[:]...)
	return append(out, s.V)
}

// finishSignature turns the HSM's raw r||s into a verified low-S signature
// with recovery id. CKM_ECDSA does not say which of s and n-s it returns, so
// S is normalised here; the recovery id is found by trying both candidates
// because the HSM does not report which of the two points R was.
func finishSignature(raw, digest []byte, pub *secp256k1.PublicKey) (Signature, error) {
	if len(raw) != 64 {
		return Signature{}, fmt.Errorf("hsm: CKM_ECDSA returned %d bytes, want 64", len(raw))
	}
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(raw[:32]); overflow || r.IsZero() {
		return Signature{}, fmt.Errorf("hsm: CKM_ECDSA returned an out-of-range r")
	}
	if overflow := s.SetByteSlice(raw[32:]); overflow || s.IsZero() {
		return Signature{}, fmt.Errorf("hsm: CKM_ECDSA returned an out-of-range s")
	}
	if s.IsOverHalfOrder() {
		s.Negate()
	}
	if !ecdsa.NewSignature(&r, &s).Verify(digest, pub) {
		return Signature{}, ErrSignature
	}
	sig := Signature{R: r.Bytes(), S: s.Bytes()}
	compact := make([]byte, 65)
	copy(compact[1:33], sig.R[:])
	copy(compact[33:], sig.S[:])
	for v := range byte(2) {
		compact[0] = 27 + 4 + v // 27: compact header base, +4: compressed key
		got, _, err := ecdsa.RecoverCompact(compact, digest)
		if err == nil && got.IsEqual(pub) {
			sig.V = v
			return sig, nil
		}
	}
	// Recovery ids 2 and 3 need r >= n - p, a chance of about 2^-127; no
	// Ethereum encoding can carry them.
	return Signature{}, fmt.Errorf("hsm: no recovery id in {0, 1} recovers the public key")
}

// parseECPoint decodes CKA_EC_POINT. PKCS#11 says it is a DER OCTET STRING
// holding the uncompressed point, but some modules return the bare point, and
// a bare 65-byte point can itself parse as an OCTET STRING, so the DER reading
// is tried first and the raw bytes second; ParsePubKey checks the point is on
// the curve either way.
func parseECPoint(b []byte) (*secp256k1.PublicKey, error) {
	var inner []byte
	if rest, err := asn1.Unmarshal(b, &inner); err == nil && len(rest) == 0 {
		if pk, err := secp256k1.ParsePubKey(inner); err == nil {
			return pk, nil
		}
	}
	pk, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return nil, fmt.Errorf("hsm: CKA_EC_POINT is not a secp256k1 point: %w", err)
	}
	return pk, nil
}
