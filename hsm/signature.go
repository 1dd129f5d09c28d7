package hsm

import (
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

// finishSignature turns the HSM's raw r||s into a verified low-S signature
// with recovery id. CKM_ECDSA does not say which of s and n-s it returns, so
// ecsig normalises S and finds the recovery id by trying the candidates,
// because the HSM does not report which point R was.
func finishSignature(raw, digest []byte, pub *secp256k1.PublicKey) (ecsig.Signature, error) {
	if len(raw) != 64 {
		return ecsig.Signature{}, fmt.Errorf("hsm: CKM_ECDSA returned %d bytes, want 64", len(raw))
	}
	sig, err := ecsig.FromRS(raw[:32], raw[32:], pub.SerializeCompressed(), digest)
	switch {
	case errors.Is(err, ecsig.ErrVerify):
		return ecsig.Signature{}, ErrSignature
	case err != nil:
		return ecsig.Signature{}, fmt.Errorf("hsm: CKM_ECDSA returned an unusable signature: %w", err)
	}
	if sig.V > 1 {
		// Recovery ids 2 and 3 need r >= n - p, a chance of about 2^-127; no
		// Ethereum encoding can carry them.
		return ecsig.Signature{}, fmt.Errorf("hsm: no recovery id in {0, 1} recovers the public key")
	}
	return sig, nil
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
