package hsmtest

import (
	"bytes"
	"crypto/aes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"testing"
)

// UnwrapPKCS8Scalar undoes AES key wrap with padding (RFC 5649) under kek
// and returns the 32-byte scalar of the PKCS#8 secp256k1 key inside. It is
// a test oracle, independent of the HSM.
func UnwrapPKCS8Scalar(t testing.TB, kek, wrapped []byte) []byte {
	t.Helper()
	plain := unwrapKWP(t, kek, wrapped)
	var info struct {
		Version    int
		Algo       pkix.AlgorithmIdentifier
		PrivateKey []byte
	}
	if _, err := asn1.Unmarshal(plain, &info); err != nil {
		t.Fatalf("PKCS#8: %v", err)
	}
	var params asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil ||
		!params.Equal(asn1.ObjectIdentifier{1, 3, 132, 0, 10}) {
		t.Fatalf("PKCS#8 curve = %v (%v), want secp256k1", params, err)
	}
	var ec struct {
		Version    int
		PrivateKey []byte
		Rest       asn1.RawValue `asn1:"optional"`
		Rest2      asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(info.PrivateKey, &ec); err != nil {
		t.Fatalf("ECPrivateKey: %v", err)
	}
	if len(ec.PrivateKey) > 32 {
		t.Fatalf("scalar is %d bytes", len(ec.PrivateKey))
	}
	scalar := make([]byte, 32)
	copy(scalar[32-len(ec.PrivateKey):], ec.PrivateKey)
	return scalar
}

func unwrapKWP(t testing.TB, kek, c []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	if len(c)%8 != 0 || len(c) < 16 {
		t.Fatalf("wrapped length %d", len(c))
	}
	n := len(c)/8 - 1
	var a [8]byte
	r := make([]byte, 8*n)
	if n == 1 {
		var p [16]byte
		block.Decrypt(p[:], c)
		copy(a[:], p[:8])
		copy(r, p[8:])
	} else {
		copy(a[:], c[:8])
		copy(r, c[8:])
		var b [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				tt := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^tt)
				copy(b[8:], r[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(r[8*(i-1):8*i], b[8:])
			}
		}
	}
	if !bytes.Equal(a[:4], []byte{0xa6, 0x59, 0x59, 0xa6}) {
		t.Fatalf("KWP integrity check failed: wrong key or not RFC 5649")
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n || !bytes.Equal(r[mli:], make([]byte, 8*n-mli)) {
		t.Fatalf("KWP bad length indicator %d for %d semiblocks", mli, n)
	}
	return r[:mli]
}
