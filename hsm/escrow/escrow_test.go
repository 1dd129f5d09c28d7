package escrow_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/sigil-wallet/sigil/hsm/escrow"
)

// TestRFC5649Vectors checks the two examples of RFC 5649 section 6.
func TestRFC5649Vectors(t *testing.T) {
	kek, _ := hex.DecodeString("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		key, _ := hex.DecodeString(tc.key)
		want, _ := hex.DecodeString(tc.wrapped)
		got, err := escrow.Wrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Wrap(%s) = %x, %v; want %s", tc.key, got, err, tc.wrapped)
		}
		back, err := escrow.Unwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("Unwrap(%s) = %x, %v", tc.wrapped, back, err)
		}
		bad := bytes.Clone(want)
		bad[len(bad)-1] ^= 1
		if _, err := escrow.Unwrap(kek, bad); !errors.Is(err, escrow.ErrUnwrap) {
			t.Errorf("altered blob: %v", err)
		}
		other := bytes.Clone(kek)
		other[0] ^= 1
		if _, err := escrow.Unwrap(other, want); !errors.Is(err, escrow.ErrUnwrap) {
			t.Errorf("wrong key: %v", err)
		}
	}
}

func FuzzUnwrap(f *testing.F) {
	kek := bytes.Repeat([]byte{7}, 32)
	w, _ := escrow.Wrap(kek, []byte("some key material of 29 bytes"))
	f.Add(w)
	f.Fuzz(func(t *testing.T, blob []byte) {
		plain, err := escrow.Unwrap(kek, blob)
		if err != nil {
			return
		}
		again, err := escrow.Wrap(kek, plain)
		if err != nil || !bytes.Equal(again, blob) {
			t.Fatalf("unwrapped %x but it wraps back to %x", blob, again)
		}
		_, _ = escrow.Secp256k1Scalar(plain)
	})
}
