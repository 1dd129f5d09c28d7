package bip32_test

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"

	"github.com/sigil-wallet/sigil/internal/bip32"
)

func TestParsePath(t *testing.T) {
	good := map[string][]uint32{"m/0": {0}, "m/0/1": {0, 1}, "m/2147483647/5": {2147483647, 5}}
	for in, want := range good {
		got, err := bip32.ParsePath(in)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%q: %v %v", in, got, err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q: %v", in, got)
			}
		}
	}
	for _, in := range []string{"", "m", "m/", "0/1", "M/0", "m/0'", "m/1h", "m/2147483648", "m/01", "m/-1", "m/a", "m//1", "m/0/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", "m/ 1"} {
		if _, err := bip32.ParsePath(in); !errors.Is(err, bip32.ErrInvalidPath) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestDeriveChildMatchesHDKeychain derives with btcutil's hdkeychain from
// the private side, so the tweak is checked too.
func TestDeriveChildMatchesHDKeychain(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	master, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	parentPriv, _ := master.ECPrivKey()
	parentPub, _ := master.ECPubKey()
	path := []uint32{0, 1, 44, 3}
	k := master
	for _, i := range path {
		if k, err = k.Derive(i); err != nil {
			t.Fatal(err)
		}
	}
	wantPub, _ := k.ECPubKey()
	wantPriv, _ := k.ECPrivKey()
	got, err := bip32.DeriveChild(parentPub.SerializeCompressed(), master.ChainCode(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.PublicKey, wantPub.SerializeCompressed()) || !bytes.Equal(got.ChainCode, k.ChainCode()) {
		t.Fatalf("child %x, want %x", got.PublicKey, wantPub.SerializeCompressed())
	}
	var tw btcec.ModNScalar
	tw.SetByteSlice(got.Tweak)
	sum := parentPriv.Key
	sum.Add(&tw)
	if !sum.Equals(&wantPriv.Key) {
		t.Fatal("parent private key + tweak is not the child's private key")
	}
}

// FuzzParsePath: a path from an API request never panics the parser, and
// whatever it accepts is non-hardened and prints back as given.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"m/0/1", "m/2147483647", "m/0'", "m//", "m/00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path, err := bip32.ParsePath(s)
		if err != nil {
			return
		}
		out := "m"
		for _, i := range path {
			if i >= 1<<31 {
				t.Fatalf("%q gave hardened index %d", s, i)
			}
			out += "/" + strconv.FormatUint(uint64(i), 10)
		}
		if out != s {
			t.Fatalf("%q parsed as %s", s, out)
		}
	})
}
