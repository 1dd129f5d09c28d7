package ethtest

import (
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
)

// TestSecp256k1PublicKeyPEM pins the SubjectPublicKeyInfo encoding: every
// compressed secp256k1 SPKI starts with the same 23 bytes (SEQUENCE,
// AlgorithmIdentifier{id-ecPublicKey, secp256k1}, BIT STRING of 34 bytes
// with no unused bits), as produced by `openssl ec -pubout -conv_form
// compressed`.
func TestSecp256k1PublicKeyPEM(t *testing.T) {
	const prefix = "3036301006072a8648ce3d020106052b8104000a032200"
	pub, err := hex.DecodeString("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
	if err != nil {
		t.Fatal(err)
	}
	out, err := secp256k1PublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(out)
	if block == nil || len(rest) != 0 || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a single PUBLIC KEY PEM block:\n%s", out)
	}
	want := prefix + hex.EncodeToString(pub)
	if got := hex.EncodeToString(block.Bytes); got != want {
		t.Errorf("SPKI DER = %s, want %s", got, want)
	}
	if !strings.HasPrefix(string(out), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("unexpected PEM header:\n%s", out)
	}
}
