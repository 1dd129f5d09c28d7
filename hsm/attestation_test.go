package hsm_test

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/internal/attest"
)

// The attestation key is made on the token, once; its signature over a
// wallet's statement verifies against the public key the token exports,
// and for no other wallet or key.
func TestAttestationKey(t *testing.T) {
	ctx := testContext(t)
	h := openToken(t, newConfig(t, "attest"))
	if _, err := h.AttestationKey(ctx); !errors.Is(err, hsm.ErrNoAttestationKey) {
		t.Fatalf("AttestationKey before init: %v, want ErrNoAttestationKey", err)
	}
	if _, _, err := h.Attest(ctx, "wal_x", []byte{2}); !errors.Is(err, hsm.ErrNoAttestationKey) {
		t.Fatalf("Attest before init: %v, want ErrNoAttestationKey", err)
	}
	if err := h.InitAttestationKey(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.InitAttestationKey(ctx); !errors.Is(err, hsm.ErrAttestationKeyExists) {
		t.Fatalf("second InitAttestationKey: %v, want ErrAttestationKeyExists", err)
	}
	pub, err := h.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.NewVerifier([]*ecdsa.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	walletKey := bytes.Repeat([]byte{3}, 33)
	id, sig, err := h.Attest(ctx, "wal_a", walletKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id, attest.KeyID(pub)) {
		t.Fatalf("key id %x, want %x", id, attest.KeyID(pub))
	}
	if err := v.Verify("wal_a", walletKey, id, sig); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := v.Verify("wal_b", walletKey, id, sig); !errors.Is(err, attest.ErrBadSignature) {
		t.Fatalf("the attestation verified for another wallet: %v", err)
	}
	other := bytes.Clone(walletKey)
	other[32] ^= 1
	if err := v.Verify("wal_a", other, id, sig); !errors.Is(err, attest.ErrBadSignature) {
		t.Fatalf("the attestation verified for another key: %v", err)
	}
	// Round trip through the PEM `sigil hsm attestation-key` prints.
	pemBytes, err := attest.EncodePEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := attest.ParsePEM(pemBytes)
	if err != nil || len(keys) != 1 || !keys[0].Equal(pub) {
		t.Fatalf("ParsePEM = %v, %v", keys, err)
	}
}

// A key that could have left the token attests nothing: the handle refuses
// to use it.
func TestAttestationKeyPolicy(t *testing.T) {
	ctx := testContext(t)
	h := openToken(t, newConfig(t, "attest-policy"))
	if err := h.PlantExtractableAttestationKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Attest(ctx, "wal_a", []byte{2}); !errors.Is(err, hsm.ErrAttestationKeyPolicy) {
		t.Fatalf("Attest with an extractable key: %v, want ErrAttestationKeyPolicy", err)
	}
}
