package hsmtest

import (
	"testing"

	"github.com/sigil-wallet/sigil/hsm/escrow"
)

// UnwrapPKCS8Scalar undoes AES key wrap with padding (RFC 5649) under kek
// and returns the 32-byte scalar of the PKCS#8 secp256k1 key inside. It is
// a test oracle, independent of the HSM (escrow checks itself against the
// RFC's vectors).
func UnwrapPKCS8Scalar(t testing.TB, kek, wrapped []byte) []byte {
	t.Helper()
	plain, err := escrow.Unwrap(kek, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := escrow.Secp256k1Scalar(plain)
	if err != nil {
		t.Fatal(err)
	}
	return scalar
}
