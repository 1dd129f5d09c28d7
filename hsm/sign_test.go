package hsm_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/miekg/pkcs11"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/ecsig"
)

func TestGenerateAndSign(t *testing.T) {
	h := newHSM(t, "sign", 2)
	ctx := testContext(t)
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if len(pub) != 33 || (pub[0] != 2 && pub[0] != 3) {
		t.Fatalf("pub = %x, want 33-byte compressed key", pub)
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("sigil"))
	sig, err := h.Sign(ctx, wrapped, pub, digest[:])
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	checkSignature(t, sig, pk, digest[:])

	// The uncompressed form of the key is accepted too.
	if _, err := h.Sign(ctx, wrapped, pk.SerializeUncompressed(), digest[:]); err != nil {
		t.Fatalf("Sign with uncompressed pub: %v", err)
	}
}

// checkSignature verifies sig independently of the package: DER parse and
// verify with decred, low S, and public-key recovery from the 65-byte form.
func checkSignature(t testing.TB, sig ecsig.Signature, pk *secp256k1.PublicKey, digest []byte) {
	t.Helper()
	der := sig.DER()
	parsed, err := ecdsa.ParseDERSignature(der)
	if err != nil {
		t.Fatalf("ParseDERSignature: %v", err)
	}
	if !parsed.Verify(digest, pk) {
		t.Fatal("signature does not verify")
	}
	var s secp256k1.ModNScalar
	s.SetBytes(&sig.S)
	if s.IsOverHalfOrder() {
		t.Fatalf("S = %x is in the high half", sig.S)
	}
	eth := sig.Ethereum()
	if len(eth) != 65 || eth[64] > 1 {
		t.Fatalf("Ethereum() = %x, want 65 bytes ending in 0 or 1", eth)
	}
	compact := append([]byte{27 + 4 + eth[64]}, eth[:64]...)
	got, _, err := ecdsa.RecoverCompact(compact, digest)
	if err != nil {
		t.Fatalf("RecoverCompact: %v", err)
	}
	if !got.IsEqual(pk) {
		t.Fatal("recovered key differs from the wallet key")
	}
}

func TestLowSOverManySignatures(t *testing.T) {
	h := newHSM(t, "lows", 1)
	ctx := testContext(t)
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := secp256k1.ParsePubKey(pub)
	vs := map[byte]int{}
	for range 50 {
		digest := make([]byte, 32)
		_, _ = rand.Read(digest)
		sig, err := h.Sign(ctx, wrapped, pub, digest)
		if err != nil {
			t.Fatal(err)
		}
		checkSignature(t, sig, pk, digest)
		vs[sig.V]++
	}
	// Both recovery ids occur about half the time; if one never shows in 50
	// signatures, the recovery search is likely broken (chance 2^-49).
	if vs[0] == 0 || vs[1] == 0 {
		t.Errorf("recovery ids over 50 signatures: %v", vs)
	}
}

func TestSignRejects(t *testing.T) {
	h := newHSM(t, "rejects", 1)
	ctx := testContext(t)
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherWrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 32)
	corrupt := bytes.Clone(wrapped)
	corrupt[len(corrupt)/2] ^= 1

	tests := []struct {
		name    string
		wrapped []byte
		pub     []byte
		digest  []byte
		want    error
	}{
		{"short digest", wrapped, pub, digest[:31], hsm.ErrInvalidInput},
		{"long digest", wrapped, pub, make([]byte, 33), hsm.ErrInvalidInput},
		{"bad pub", wrapped, []byte{2, 1, 2}, digest, hsm.ErrInvalidInput},
		{"empty blob", nil, pub, digest, hsm.ErrInvalidInput},
		{"corrupt blob", corrupt, pub, digest, hsm.ErrWrappedKey},
		{"blob of another key", otherWrapped, pub, digest, hsm.ErrSignature},
		{"pub of another key", wrapped, otherPub, digest, hsm.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Sign(ctx, tt.wrapped, tt.pub, tt.digest)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Sign error = %v, want %v", err, tt.want)
			}
		})
	}
	if n, err := h.SessionObjectCount(ctx); err != nil || n != 0 {
		t.Fatalf("session objects after failures = %d, %v; want 0", n, err)
	}
}

func TestPrivateKeyIsSensitive(t *testing.T) {
	h := newHSM(t, "sensitive", 1)
	readable, readErr, err := h.PrivateValueReadable(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if readable {
		t.Fatal("CKA_VALUE of the generated private key is readable")
	}
	var rv pkcs11.Error
	if !errors.As(readErr, &rv) || rv != pkcs11.CKR_ATTRIBUTE_SENSITIVE {
		t.Fatalf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", readErr)
	}
}

// TestBlobIsWrappedUnderMasterKey imports known master key material, so the
// test can unwrap the blob itself (RFC 5649) and check it holds a PKCS#8 key
// for pub, while the blob bytes never contain the scalar in the clear.
func TestBlobIsWrappedUnderMasterKey(t *testing.T) {
	h := openToken(t, newConfig(t, "known-mk"))
	ctx := testContext(t)
	material, err := hsm.GenerateMasterKeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	kek := bytes.Clone(material)
	if err := h.ImportMasterKey(ctx, material); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(material, make([]byte, 32)) {
		t.Error("ImportMasterKey did not zero the material")
	}
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrapped) <= 32 {
		t.Fatalf("wrapped blob is %d bytes; a wrapped PKCS#8 key is longer than a bare scalar", len(wrapped))
	}
	scalar := hsmtest.UnwrapPKCS8Scalar(t, kek, wrapped)
	priv := secp256k1.PrivKeyFromBytes(scalar)
	if !bytes.Equal(priv.PubKey().SerializeCompressed(), pub) {
		t.Fatal("scalar in the blob does not match the public key")
	}
	if bytes.Contains(wrapped, scalar) {
		t.Fatal("wrapped blob contains the private scalar in the clear")
	}
}
