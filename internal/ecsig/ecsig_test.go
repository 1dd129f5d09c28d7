package ecsig_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

// reference signs with decred and returns r, s (low S), the compressed key
// and the recovery id decred reports.
func reference(t *testing.T, seed int) (r, s [32]byte, pub []byte, digest []byte, v byte) {
	t.Helper()
	keyBytes := sha256.Sum256(fmt.Appendf(nil, "key %d", seed))
	priv := secp256k1.PrivKeyFromBytes(keyBytes[:])
	d := sha256.Sum256(fmt.Appendf(nil, "msg %d", seed))
	compact := ecdsa.SignCompact(priv, d[:], true)
	copy(r[:], compact[1:33])
	copy(s[:], compact[33:])
	return r, s, priv.PubKey().SerializeCompressed(), d[:], compact[0] - 27 - 4
}

func negate(s [32]byte) [32]byte {
	var sc secp256k1.ModNScalar
	sc.SetBytes(&s)
	sc.Negate()
	return sc.Bytes()
}

func TestFromRS(t *testing.T) {
	for seed := range 20 {
		r, s, pub, digest, v := reference(t, seed)
		high := negate(s)
		for name, sIn := range map[string][]byte{"low S": s[:], "high S": high[:]} {
			sig, err := ecsig.FromRS(r[:], sIn, pub, digest)
			if err != nil {
				t.Fatalf("seed %d %s: %v", seed, name, err)
			}
			if sig.R != r || sig.S != s || sig.V != v {
				t.Fatalf("seed %d %s: got %+v, want r=%x s=%x v=%d", seed, name, sig, r, s, v)
			}
			if !ecsig.Verify(pub, digest, sig) {
				t.Fatalf("seed %d %s: Verify rejects", seed, name)
			}
			der, err := ecdsa.ParseDERSignature(sig.DER())
			if err != nil {
				t.Fatal(err)
			}
			pk, _ := secp256k1.ParsePubKey(pub)
			if !der.Verify(digest, pk) {
				t.Fatal("DER does not verify")
			}
			eth := sig.Ethereum()
			if len(eth) != 65 || !bytes.Equal(eth[:32], r[:]) || !bytes.Equal(eth[32:64], s[:]) || eth[64] != v {
				t.Fatalf("Ethereum() = %x", eth)
			}
		}
	}
}

func TestFromRSShortScalars(t *testing.T) {
	// Find a reference signature whose r has a leading zero byte is slow;
	// instead check that stripped and padded forms of the same values agree.
	r, s, pub, digest, _ := reference(t, 1)
	a, err := ecsig.FromRS(r[:], s[:], pub, digest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ecsig.FromRS(append([]byte{0, 0}, r[:]...), s[:], pub, digest)
	if err != nil || a != b {
		t.Fatalf("zero-padded r: %v %v", b, err)
	}
	uncompressed, _ := secp256k1.ParsePubKey(pub)
	c, err := ecsig.FromRS(r[:], s[:], uncompressed.SerializeUncompressed(), digest)
	if err != nil || a != c {
		t.Fatalf("uncompressed key: %v %v", c, err)
	}
}

func TestFromRSRejects(t *testing.T) {
	r, s, pub, digest, _ := reference(t, 3)
	_, _, otherPub, otherDigest, _ := reference(t, 4)
	n := secp256k1.Params().N.Bytes()
	tests := []struct {
		name        string
		r, s        []byte
		pub, digest []byte
		want        error
	}{
		{"wrong digest", r[:], s[:], pub, otherDigest, ecsig.ErrVerify},
		{"wrong key", r[:], s[:], otherPub, digest, ecsig.ErrVerify},
		{"short digest", r[:], s[:], pub, digest[:31], ecsig.ErrInvalidDigest},
		{"bad key", r[:], s[:], pub[1:], digest, ecsig.ErrInvalidPublicKey},
		{"zero r", make([]byte, 32), s[:], pub, digest, ecsig.ErrInvalidScalar},
		{"zero s", r[:], nil, pub, digest, ecsig.ErrInvalidScalar},
		{"r = n", n, s[:], pub, digest, ecsig.ErrInvalidScalar},
		{"33-byte r", append([]byte{1}, r[:]...), s[:], pub, digest, ecsig.ErrInvalidScalar},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ecsig.FromRS(tc.r, tc.s, tc.pub, tc.digest); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for hint := range byte(2) {
				if _, err := ecsig.FromRSHint(tc.r, tc.s, tc.pub, tc.digest, hint); !errors.Is(err, tc.want) {
					t.Fatalf("hint %d: err = %v, want %v", hint, err, tc.want)
				}
			}
		})
	}
}

// TestFromRSHint: a right or wrong recovery id hint gives the same
// signature and id as none.
func TestFromRSHint(t *testing.T) {
	for seed := range 20 {
		r, s, pub, digest, v := reference(t, seed)
		for _, hint := range []byte{0, 1, 2, 255} {
			sig, err := ecsig.FromRSHint(r[:], s[:], pub, digest, hint)
			if err != nil {
				t.Fatalf("seed %d hint %d: %v", seed, hint, err)
			}
			if sig.R != r || sig.S != s || sig.V != v {
				t.Fatalf("seed %d hint %d: got %+v, want v=%d", seed, hint, sig, v)
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	r, s, pub, digest, _ := reference(t, 5)
	good, err := ecsig.FromRS(r[:], s[:], pub, digest)
	if err != nil {
		t.Fatal(err)
	}
	highS := good
	highS.S = negate(good.S)
	highS.V ^= 1 // what the recovery id becomes for the negated S
	wrongV := good
	wrongV.V ^= 1
	bigV := good
	bigV.V = 4
	tests := map[string]struct {
		sig    ecsig.Signature
		digest []byte
	}{
		"high S":         {highS, digest},
		"wrong v":        {wrongV, digest},
		"v out of range": {bigV, digest},
		"zero":           {ecsig.Signature{}, digest},
		"short digest":   {good, digest[:31]},
		"other digest":   {good, make([]byte, 32)},
	}
	for name, tc := range tests {
		if ecsig.Verify(pub, tc.digest, tc.sig) {
			t.Errorf("%s: Verify accepted", name)
		}
	}
	if !ecsig.Verify(pub, digest, good) {
		t.Fatal("Verify rejects a good signature")
	}
}
