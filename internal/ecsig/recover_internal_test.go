package ecsig

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// TestRecoverFastAgrees: the libsecp256k1 path and the pure Go path find
// the same recovery id for valid signatures (compressed and uncompressed
// keys, both ids), and the fast path never accepts a signature under
// another key or of another digest.
func TestRecoverFastAgrees(t *testing.T) {
	seen := map[byte]int{}
	for seed := range 200 {
		keyBytes := sha256.Sum256(fmt.Appendf(nil, "key %d", seed))
		priv := secp256k1.PrivKeyFromBytes(keyBytes[:])
		d := sha256.Sum256(fmt.Appendf(nil, "msg %d", seed))
		compact := ecdsa.SignCompact(priv, d[:], true)
		var r, s [32]byte
		copy(r[:], compact[1:33])
		copy(s[:], compact[33:])
		var rs, ss secp256k1.ModNScalar
		rs.SetBytes(&r)
		ss.SetBytes(&s)
		want, ok := verifyRecover(&rs, &ss, d[:], priv.PubKey())
		if !ok {
			t.Fatalf("seed %d: the reference signature does not verify", seed)
		}
		// The id tried first (a driver's hint, right or wrong) only
		// orders the work: the answer is the same.
		for first := range byte(2) {
			for _, pub := range [][]byte{priv.PubKey().SerializeCompressed(), priv.PubKey().SerializeUncompressed()} {
				v, ok := recoverFast(&r, &s, d[:], pub, first)
				if !cgoBuild {
					if ok {
						t.Fatal("recoverFast answered without cgo")
					}
					continue
				}
				if !ok || v != want {
					t.Fatalf("seed %d, %d-byte key, id %d first: recoverFast = %d, %v; pure Go says %d", seed, len(pub), first, v, ok, want)
				}
			}
			other := secp256k1.PrivKeyFromBytes(d[:]).PubKey().SerializeCompressed()
			if _, ok := recoverFast(&r, &s, d[:], other, first); ok {
				t.Fatalf("seed %d: accepted under another key", seed)
			}
			d2 := sha256.Sum256(d[:])
			if _, ok := recoverFast(&r, &s, d2[:], priv.PubKey().SerializeCompressed(), first); ok {
				t.Fatalf("seed %d: accepted for another digest", seed)
			}
		}
		seen[want]++
	}
	if cgoBuild && (seen[0] == 0 || seen[1] == 0) {
		t.Fatalf("recovery ids seen: %v, want both 0 and 1", seen)
	}
}
